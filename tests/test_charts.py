"""The charts' iframe documents (pages/charts.py), the plotly.js bundle they load, and the server's warm-up
(pages/warmup.py, run by serve.py). That the charts draw in a real browser is checked in test_e2e_dashboard.py."""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from pathlib import Path

import duckdb
import pandas as pd
import plotly
import plotly.express as px
import plotly.graph_objects as go
import pytest

from pages import charts
from pages.warmup import warm_up
from tests.conftest import ROOT

HOSTILE = "</script><script>alert(1)</script><!-- & \u2028 ]]>"


def test_text_from_the_database_stays_data_in_the_chart_document():
    frame = pd.DataFrame({"code": [HOSTILE, "ok"], "n": [3, 4]})
    html = charts.chart_html(px.bar(frame, x="code", y="n", title=HOSTILE), "hostile")
    # the only script ends are the document's own three blocks
    assert html.count("</script>") == 3
    assert "<script>alert" not in html and "<!--" not in html and "\u2028" not in html
    figure = charts.figure_from_html(html)
    # plotly.js reads tags in the text it draws: the data's <, > and & arrive as entities, shown as the characters
    assert figure["layout"]["title"]["text"] == charts.plotly_text(HOSTILE) and "<" not in charts.plotly_text(HOSTILE)
    assert list(figure["data"][0]["x"]) == [charts.plotly_text(HOSTILE), "ok"]
    assert "<br>" in figure["data"][0]["hovertemplate"]  # the code's own template keeps its tags
    assert 'data-chart="hostile"' in html


def test_a_trace_type_the_basic_bundle_cannot_draw_is_refused():
    with pytest.raises(ValueError, match="heatmap"):
        charts.chart_html(go.Figure(go.Heatmap(z=[[1, 2], [3, 4]])), "heat")
    with pytest.raises(ValueError, match="key"):
        charts.chart_html(go.Figure(go.Bar(x=[1], y=[1])), 'x" onload="alert(1)')


def test_big_scatter_and_line_charts_are_drawn_as_svg_not_webgl():
    # plotly.express switches to WebGL ("scattergl", not in the basic bundle) above 1,000 points: a month of
    # 40-minute cycles on the Sync cycles page is more than that
    frame = pd.DataFrame({"t": pd.date_range("2026-01-01", periods=1500, freq="40min", tz="UTC"),
                          "gap": [40.0] * 1500, "app": ["a", "b"] * 750})
    for fig in (px.scatter(frame, x="t", y="gap", color="app"), px.line(frame, x="t", y="gap", markers=True)):
        assert {t.type for t in fig.data} == {"scattergl"}
        figure = charts.figure_from_html(charts.chart_html(fig, "big"))
        assert {t["type"] for t in figure["data"]} == {"scatter"}
        assert sum(len(t["x"]) for t in figure["data"]) == 1500
        assert figure["data"][0]["mode"] in ("markers", "lines+markers")


def test_the_figure_keeps_its_height_and_the_iframe_gets_it():
    html = charts.chart_html(go.Figure(go.Bar(x=[1], y=[1]), layout={"height": 300}), "short")
    assert "height: 300px" in html and charts.figure_from_html(html)["layout"]["height"] == 300
    html = charts.chart_html(go.Figure(go.Scatter(x=[1], y=[1])), "default")
    assert f"height: {charts.DEFAULT_HEIGHT}px" in html


def test_a_row_holds_every_figure_in_one_document_with_one_copy_of_plotly():
    frame = pd.DataFrame({"day": ["a", "b"], "n": [3, 4], "code": [HOSTILE, "ok"]})
    bar = px.bar(frame, x="code", y="n", title=HOSTILE)
    line = px.line(frame, x="day", y="n", markers=True, title="trend")
    html = charts.row_html([(bar, "events"), (line, "trend")], widths=[1, 2])
    assert html.count(charts.BUNDLE_URL) == 2  # one <script src>, and the message if it cannot load
    assert html.count(f'<script src="{charts.BUNDLE_URL}">') == 1
    assert html.count("</script>") == 4  # two figure blocks, the bundle and the drawing script
    assert "<script>alert" not in html
    first, second = charts.figures_from_html(html)
    shown = charts.plotly_text(HOSTILE)  # as entities: plotly.js shows the characters, reads no tags
    assert first["layout"]["title"]["text"] == shown and list(first["data"][0]["x"]) == [shown, "ok"]
    assert second["layout"]["title"]["text"] == "trend" and second["data"][0]["mode"] == "lines+markers"
    # side by side in the given proportions, each at its own height, in the order given
    divs = re.findall(r'<div class="chart" data-chart="(\w+)" style="flex: (\d+) 1 0; height: (\d+)px">', html)
    assert divs == [("events", "1", "450"), ("trend", "2", "450")]


def test_a_row_refuses_repeated_keys_and_bad_widths():
    fig = go.Figure(go.Bar(x=[1], y=[1]))
    with pytest.raises(ValueError, match="distinct keys"):
        charts.row_html([(fig, "a"), (go.Figure(fig), "a")])
    with pytest.raises(ValueError, match="widths"):
        charts.row_html([(fig, "a"), (go.Figure(fig), "b")], widths=[1])
    with pytest.raises(ValueError, match="widths"):
        charts.row_html([(fig, "a")], widths=[0])
    with pytest.raises(ValueError, match="distinct keys"):
        charts.row_html([])


def test_figures_use_a_real_palette_not_streamlits_placeholders():
    # importing streamlit makes its template (colours #000001...) the default; pages/charts.py replaces it
    frame = pd.DataFrame({"x": [1, 2, 3], "y": [1, 2, 3], "c": ["a", "b", "c"]})
    colors = [t.marker.color for t in px.scatter(frame, x="x", y="y", color="c").data]
    assert colors == charts.COLORWAY[:3]
    assert not any(re.fullmatch(r"#0000\d\d", c) for c in colors)
    # plotly_white underneath, merged once: a default named "a+b" is merged again for every figure
    import plotly.io as pio

    assert pio.templates.default == "provlens"
    assert px.bar(frame, x="x", y="y").layout.template.layout.plot_bgcolor == "white"


def test_the_bundle_is_plotly_js_basic_of_the_pinned_plotly_version():
    header = charts.BUNDLE_PATH.read_bytes()[:300].decode()
    full = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"  # what the plotly package ships
    version = re.search(r"plotly\.js v(\d+\.\d+\.\d+)", full.read_bytes()[:300].decode()).group(1)
    assert f"plotly.js (basic - minified) v{version}" in header
    assert charts.BUNDLE_FILE == f"plotly-basic-{version}.min.js"
    source = (ROOT / "static" / "SOURCE.txt").read_text()
    digest = hashlib.sha256(charts.BUNDLE_PATH.read_bytes()).hexdigest()
    assert f"\nsha256 {digest}\n" in source
    # upstream's file, unchanged, behind V8's compile hint (which must be the very first line to count)
    hint, upstream = charts.BUNDLE_PATH.read_bytes().split(b"\n", 1)
    assert hint == b"//# allFunctionsCalledOnLoad"
    assert f"upstream sha256 {hashlib.sha256(upstream).hexdigest()}\n" in source


def test_streamlit_serves_the_static_folder():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["enableStaticServing"] is True
    assert charts.BUNDLE_PATH.parent == ROOT / "static"


# ------------------------------------------------------------------------------ pages/warmup.py


def test_warm_up_reads_the_database(demo_db, monkeypatch):
    monkeypatch.setenv("PROVLENS_DB", str(demo_db))
    message = warm_up()
    assert re.fullmatch(r"warmed up in [\d.]+ s \(imports and charts [\d.]+ s, database [\d.]+ s\)", message)


def test_warm_up_runs_streamlits_first_element_check(tmp_path):
    """In a fresh interpreter: after the warm-up, the first element a script draws no longer pays for
    Streamlit's once-per-process REPL check (``inspect.stack()`` over every loaded module)."""
    import subprocess
    import sys

    code = ("import streamlit.delta_generator as dg; assert not dg._use_warning_has_been_displayed; "
            "from pages.warmup import warm_up; warm_up(); print(dg._use_warning_has_been_displayed)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PROVLENS_DB": str(tmp_path / "none.duckdb")})
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stderr[-2000:]


def test_warm_up_never_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVLENS_DB", str(tmp_path / "none.duckdb"))
    assert "no database file at" in warm_up()
    foreign = tmp_path / "foreign.duckdb"
    duckdb.connect(str(foreign)).close()  # a DuckDB file without provlens's tables
    monkeypatch.setenv("PROVLENS_DB", str(foreign))
    message = warm_up()
    assert "the database was not read (CatalogException" in message


def test_warm_up_gives_up_on_a_database_an_ingest_holds(demo_db, tmp_path, monkeypatch):
    """Another process holds the file read-write (as an ingest does): the server still starts within seconds."""
    import shutil
    import subprocess
    import sys
    import time

    from pages import warmup

    db = tmp_path / "held.duckdb"
    shutil.copy(demo_db, db)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(60)", str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("PROVLENS_DB", str(db))
        t0 = time.monotonic()
        message = warmup.warm_up()
        elapsed = time.monotonic() - t0
    finally:
        holder.kill()
        holder.wait()
    assert "the database was not read" in message, message
    assert elapsed < warmup.WARM_LOCK_TIMEOUT_S + 5, elapsed
