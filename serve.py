"""The dashboard server: ``streamlit run serve.py`` serves ``app.py``, warmed up before the first visit.

Streamlit runs nothing of the app until someone opens it, so the first visit after a start used to pay
for importing pandas, Plotly and DuckDB, Plotly's first figure and a cold database (~1 s at 5M events,
B6 in bench/BENCHMARKS.md). ``st.App``'s lifespan runs :func:`pages.warmup.warm_up` before the server
takes connections (its health check answers after it). ``streamlit run app.py`` still works, without it.

After the warm-up, the objects that live as long as the server (modules, Plotly's validators, ~150k objects)
are frozen out of the garbage collector (``gc.freeze``): Streamlit collects garbage after every script run
(``runner.postScriptGC``), and a full collection over them held the interpreter for 50-200 ms, delaying the
last messages of the first visit.

Streamlit's ``/_stcore/metrics`` (sessions, cache sizes, ...) answers without a login; :class:`NoStreamlitMetrics`
makes it a 404 unless ``PROVLENS_STREAMLIT_METRICS=1`` (issue 27).

``pages/session_loops.py`` closes the script event loop of every session a closed tab leaves behind (3 fds per
page view otherwise stayed open for minutes: Streamlit 1.67 parks disconnected sessions for reconnects with their
loops open; issue 27).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys

import streamlit as st
from starlette.middleware import Middleware

from pages import session_loops

session_loops.install()  # before the server takes connections; a no-op (with a warning) on other Streamlit internals


METRICS_ENV = "PROVLENS_STREAMLIT_METRICS"


class NoStreamlitMetrics:
    """ASGI middleware (``st.App(middleware=...)`` runs it before Streamlit's routes): 404 for Streamlit's metrics
    endpoint (``[baseUrlPath]/_stcore/metrics``, any method, trailing slashes too) unless
    ``PROVLENS_STREAMLIT_METRICS=1``. st.App refuses user routes on Streamlit's reserved paths, so the endpoint
    cannot be replaced by a route; it is answered here before Streamlit sees the request."""

    def __init__(self, app):
        self.app = app
        self.enabled = os.environ.get(METRICS_ENV, "").strip() == "1"

    async def __call__(self, scope, receive, send):
        if (not self.enabled and scope["type"] == "http"
                and scope.get("path", "").rstrip("/").endswith("/_stcore/metrics")):
            from starlette.responses import PlainTextResponse

            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)


@contextlib.asynccontextmanager
async def _lifespan(_app):
    from pages.warmup import warm_up

    done = await asyncio.to_thread(warm_up)
    gc.collect()
    gc.freeze()
    print(f"provlens: {done}; {gc.get_freeze_count():,} objects frozen out of the garbage collector",
          file=sys.stderr, flush=True)
    yield


# The script served: app.py; the benchmarks serve bench/floor_page.py (B6's floor) the same way.
app = st.App(os.environ.get("PROVLENS_APP", "app.py"), lifespan=_lifespan, middleware=[Middleware(NoStreamlitMetrics)])
