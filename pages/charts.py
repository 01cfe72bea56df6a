"""Plotly charts drawn by plotly.js's basic bundle (bar, scatter and pie traces) in an iframe.

``st.plotly_chart`` loads Streamlit's Plotly chunk: the whole plotly.js (4.7 MB), evaluated in the browser
before the page's first chart can draw (~0.9 s of B6). The pages' charts only use bar, scatter/line and pie
traces, which plotly.js's basic bundle (1.2 MB, the same plotly.js version as the ``plotly`` package) draws.
It is served from ``static/`` (``server.enableStaticServing``) and cached by the browser.

The figure travels as JSON in a ``<script type="application/json">`` block with ``<``, ``>`` and ``&``
escaped, so text from the database (app names, error codes) is data and can never end the block.
"""

from __future__ import annotations

import json
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st

BUNDLE_FILE = "plotly-basic-4.1.1.min.js"
BUNDLE_PATH = Path(__file__).resolve().parent.parent / "static" / BUNDLE_FILE
# Relative to the page's URL, so it also works under ``server.baseUrlPath`` (an iframe's srcdoc document
# resolves URLs against its parent page).
BUNDLE_URL = f"app/static/{BUNDLE_FILE}"
DEFAULT_HEIGHT = 450  # plotly.js's own default height
TRACE_TYPES = frozenset({"bar", "scatter", "pie"})  # what the basic bundle draws (and the pages use)
FONT = "'Source Sans Pro', 'Source Sans 3', -apple-system, 'Segoe UI', Roboto, sans-serif"
# Streamlit's categorical palette. Importing streamlit makes its own template the default, whose colours are
# placeholders (#000001...) that only st.plotly_chart replaces: figures made after this module is imported
# use plotly_white with this palette instead.
COLORWAY = ["#0068c9", "#83c9ff", "#ff2b2b", "#ffabab", "#29b09d", "#7defa1", "#ff8700", "#ffd16a", "#6d3fc0",
            "#d5dae5"]
pio.templates["provlens"] = go.layout.Template(layout={"colorway": COLORWAY, "font": {"family": FONT}})
pio.templates.default = "plotly_white+provlens"

FIGURE_TAG = '<script type="application/json" id="figure">'
_PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
html, body {{ margin: 0; padding: 0; overflow: hidden; background: #fff; }}
#chart {{ width: 100%; height: {height}px; }}
</style></head><body>
<div id="chart" data-chart="{key}"></div>
{figure_tag}{figure}</script>
<script src="{bundle}"></script>
<script>
const figure = JSON.parse(document.getElementById("figure").textContent);
if (window.Plotly) {{
  Plotly.newPlot("chart", figure.data, figure.layout, {{responsive: true, displaylogo: false}});
}} else {{
  document.getElementById("chart").textContent = "The chart library ({bundle}) could not be loaded.";
}}
</script></body></html>"""


def script_json(text: str) -> str:
    """JSON text made safe inside a ``<script>`` block (``</script>``, ``<!--`` and line separators)."""
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _svg_scatter(trace):
    """plotly.express draws scatter and line charts of more than 1,000 points with WebGL (``scattergl``), which
    the basic bundle lacks: the same trace as an SVG ``scatter`` (its attributes are a subset)."""
    if trace.type != "scattergl":
        return trace
    spec = trace.to_plotly_json()
    spec.pop("type")
    return go.Scatter(spec)


def chart_html(fig: go.Figure, key: str) -> str:
    """The iframe document that draws ``fig`` at its own height (default 450 px) and full width."""
    if not key.replace("_", "").isalnum():
        raise ValueError(f"chart key {key!r}: letters, digits and underscores only")
    if any(trace.type == "scattergl" for trace in fig.data):
        fig = go.Figure([_svg_scatter(trace) for trace in fig.data], fig.layout)
    unsupported = {trace.type for trace in fig.data} - TRACE_TYPES
    if unsupported:
        raise ValueError(f"chart {key!r}: trace type(s) {sorted(unsupported)} are not in plotly.js's basic "
                         f"bundle ({', '.join(sorted(TRACE_TYPES))})")
    height = _height(fig)
    fig.update_layout(height=height)
    return _PAGE.format(height=height, key=key, figure_tag=FIGURE_TAG, figure=script_json(fig.to_json()),
                        bundle=BUNDLE_URL)


def _height(fig: go.Figure) -> int:
    return int(fig.layout.height or DEFAULT_HEIGHT)


def show(fig: go.Figure, key: str, *, into=None) -> None:
    """Draw ``fig`` full width in ``into`` (a column or container; default: the page)."""
    (into or st).iframe(chart_html(fig, key), height=_height(fig))


def figure_from_html(html: str) -> dict:
    """The figure (``{"data": ..., "layout": ...}``) a chart's iframe document holds (tests, checks)."""
    start = html.index(FIGURE_TAG) + len(FIGURE_TAG)
    return json.loads(html[start:html.index("</script>", start)])
