"""Plotly charts drawn by plotly.js's basic bundle (bar, scatter and pie traces) in an iframe.

``st.plotly_chart`` loads Streamlit's Plotly chunk: the whole plotly.js (4.7 MB), evaluated in the browser
before the page's first chart can draw (~0.9 s of B6). The pages' charts only use bar, scatter/line and pie
traces, which plotly.js's basic bundle (1.2 MB, the same plotly.js version as the ``plotly`` package) draws.
It is served from ``static/`` (``server.enableStaticServing``) and cached by the browser; its first line is
V8's compile hint (``//# allFunctionsCalledOnLoad``, static/SOURCE.txt): Chromium compiles it off the main
thread while it loads.

Charts that sit side by side share one iframe (:func:`show_row`): plotly.js is fetched and compiled once for
the row instead of once per chart, which a first visit (empty browser cache) pays on the page's main thread
(~0.15 s of the Overview's, B6). The charts keep their side-by-side layout on narrow screens (Streamlit's
columns would stack them).

Each figure travels as JSON in a ``<script type="application/json">`` block with ``<``, ``>`` and ``&``
escaped, so text from the database (app names, error codes) is data and can never end the block. plotly.js
reads tags in any text it draws (``<a href>`` becomes a live link in a legend, an axis label or a hover box), so
every string of a figure except the templates the code writes (``hovertemplate``, ``texttemplate``) has ``&``,
``<`` and ``>`` as entities, which plotly.js shows as the characters (issue 27, :func:`plotly_text`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
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
# Merged once: a default named "a+b" is merged again for every figure (~20 ms of each plotly.express call).
pio.templates["provlens"] = pio.templates.merge_templates(
    pio.templates["plotly_white"], go.layout.Template(layout={"colorway": COLORWAY, "font": {"family": FONT}}))
pio.templates.default = "provlens"

FIGURE_TAG = '<script type="application/json" id="figure-{key}">'
_FIGURE_BLOCK = re.compile(r'<script type="application/json" id="figure-(\w+)">(.*?)</script>', re.S)
GAP_PX = 16  # Streamlit's gap between columns (1rem)
_PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
html, body {{ margin: 0; padding: 0; overflow: hidden; background: #fff; }}
#row {{ display: flex; gap: {gap}px; }}
.chart {{ min-width: 0; }}
</style></head><body>
<div id="row">{charts}</div>
{figures}
<script src="{bundle}"></script>
<script>
for (const chart of document.querySelectorAll("[data-chart]")) {{
  const figure = JSON.parse(document.getElementById("figure-" + chart.dataset.chart).textContent);
  if (window.Plotly) {{
    Plotly.newPlot(chart, figure.data, figure.layout, {{responsive: true, displaylogo: false}});
  }} else {{
    chart.textContent = "The chart library ({bundle}) could not be loaded.";
  }}
}}
</script></body></html>"""


def script_json(text: str) -> str:
    """JSON text made safe inside a ``<script>`` block (``</script>``, ``<!--`` and line separators)."""
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


_TEMPLATES = frozenset({"hovertemplate", "texttemplate"})  # written by the code (plotly.express), not by the data


def plotly_text(value, key: str = ""):
    """A figure's JSON value with ``&``, ``<`` and ``>`` in its strings as HTML entities: plotly.js shows them as the
    characters instead of reading tags (``<a href=...>`` in an app name would be a live link). Templates stay."""
    if isinstance(value, str):
        if key in _TEMPLATES:
            return value
        return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if isinstance(value, dict):
        return {k: plotly_text(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [plotly_text(v, key) for v in value]
    return value


def _svg_scatter(trace):
    """plotly.express draws scatter and line charts of more than 1,000 points with WebGL (``scattergl``), which
    the basic bundle lacks: the same trace as an SVG ``scatter`` (its attributes are a subset)."""
    if trace.type != "scattergl":
        return trace
    spec = trace.to_plotly_json()
    spec.pop("type")
    return go.Scatter(spec)


def _drawable(fig: go.Figure, key: str) -> go.Figure:
    if not key.replace("_", "").isalnum():
        raise ValueError(f"chart key {key!r}: letters, digits and underscores only")
    if any(trace.type == "scattergl" for trace in fig.data):
        fig = go.Figure([_svg_scatter(trace) for trace in fig.data], fig.layout)
    unsupported = {trace.type for trace in fig.data} - TRACE_TYPES
    if unsupported:
        raise ValueError(f"chart {key!r}: trace type(s) {sorted(unsupported)} are not in plotly.js's basic "
                         f"bundle ({', '.join(sorted(TRACE_TYPES))})")
    fig.update_layout(height=_height(fig))
    return fig


def row_html(charts: Sequence[tuple[go.Figure, str]], widths: Sequence[float] | None = None) -> str:
    """The iframe document that draws the figures side by side (``widths``: relative, default equal), each at
    its own height (default 450 px); ``charts`` holds (figure, key) pairs with distinct keys."""
    keys = [key for _fig, key in charts]
    if not charts or len(set(keys)) != len(keys):
        raise ValueError(f"a row needs at least one chart and distinct keys, got {keys}")
    widths = list(widths or [1] * len(charts))
    if len(widths) != len(charts) or min(widths) <= 0:
        raise ValueError(f"widths {widths}: one positive number per chart")
    figs = [_drawable(fig, key) for fig, key in charts]
    divs = "".join(f'<div class="chart" data-chart="{key}" style="flex: {w} 1 0; height: {_height(fig)}px"></div>'
                   for (fig, key, w) in zip(figs, keys, widths))
    blocks = "\n".join(f"{FIGURE_TAG.format(key=key)}{script_json(json.dumps(plotly_text(json.loads(fig.to_json()))))}"
                        "</script>" for fig, key in zip(figs, keys))
    return _PAGE.format(gap=GAP_PX, charts=divs, figures=blocks, bundle=BUNDLE_URL)


def chart_html(fig: go.Figure, key: str) -> str:
    """The iframe document that draws ``fig`` at its own height (default 450 px) and full width."""
    return row_html([(fig, key)])


def _height(fig: go.Figure) -> int:
    return int(fig.layout.height or DEFAULT_HEIGHT)


def show(fig: go.Figure, key: str, *, into=None) -> None:
    """Draw ``fig`` full width in ``into`` (a column or container; default: the page)."""
    show_row([(fig, key)], into=into)


def show_row(charts: Sequence[tuple[go.Figure, str]], widths: Sequence[float] | None = None, *, into=None) -> None:
    """Draw (figure, key) pairs side by side, full width, in one iframe (relative ``widths``, default equal)."""
    html = row_html(charts, widths)
    (into or st).iframe(html, height=max(_height(fig) for fig, _key in charts))


def figures_from_html(html: str) -> list[dict]:
    """The figures (``{"data": ..., "layout": ...}``) a chart iframe document holds, in order (tests, checks)."""
    return [json.loads(body) for _key, body in _FIGURE_BLOCK.findall(html)]


def figure_from_html(html: str) -> dict:
    """The figure of a one-chart iframe document (tests, checks)."""
    (figure,) = figures_from_html(html)
    return figure
