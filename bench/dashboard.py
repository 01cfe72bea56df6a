"""B5 and B6: the real dashboard server on a big database, driven by headless Chromium.

B6: time from navigation to the Overview's first rendered Plotly chart (first visit: a new browser
profile right after the server started; then warm visits). Its baseline, alternating in the same run: the
same first visit to ``bench/floor_page.py`` (one chart drawn the same way, no data) served the same way.
B5: the server's resident memory after every page has been opened.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.harness import ROOT

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _pages() -> list[str]:
    """The url paths of the app's pages, read from app.py's st.Page entries ('' is the default page)."""
    text = (ROOT / "app.py").read_text()
    paths = re.findall(r'url_path="([^"]+)"', text)
    return ["", *paths]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _wait_idle(page, timeout_ms: int = 120_000) -> None:
    """Until the app's script run (fragments included) has finished with the session connected: the app's own
    state, not the network's ("networkidle" may never come on a busy machine; issue 27)."""
    page.locator('[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
                 '[data-test-script-state="notRunning"]').wait_for(timeout=timeout_ms)


def _chart_drawn(page) -> bool:
    """Whether a chart has drawn its SVG: charts are iframes (pages/charts.py), so look in every frame. A chart
    whose plotly.js bundle did not load (pages/charts.py says so in its place) fails at once."""
    for frame in page.frames:
        problem = ""
        with contextlib.suppress(Exception):  # a frame may navigate or go away while we look
            if frame.locator(".main-svg").count():
                return True
            missing = frame.get_by_text("could not be loaded")
            if missing.count():
                problem = missing.first.inner_text()[:300]
        if problem:
            raise RuntimeError(f"a chart cannot draw: {problem}")
    return False


def _wait_for_chart(page, timeout_s: float = 300) -> None:
    """Until the first Plotly chart has drawn; an exception or error box on the page fails at once."""
    problems = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _chart_drawn(page):
            return
        if problems.count():
            raise RuntimeError(f"the Overview shows an error: {problems.first.inner_text()[:300]}")
        time.sleep(0.02)
    raise RuntimeError("no chart on the Overview within the time limit")


@contextlib.contextmanager
def running_dashboard(db: str, log_path: Path | None = None, *, base_path: str = "", app: str = "",
                      extra_args: tuple[str, ...] = ()):
    """``streamlit run serve.py`` (the README's way: app.py, warmed up) on 127.0.0.1 against ``db``; yields
    (base_url, process); always stopped. ``base_path``: serve under ``server.baseUrlPath`` (a reverse proxy's
    prefix); the base URL then ends with it. ``app``: serve this script instead of app.py (B6's floor).
    ``extra_args``: more ``streamlit run`` options (e.g. ``--secrets.files F``)."""
    port = _free_port()
    env = {**os.environ, "PROVLENS_DB": str(db), **({"PROVLENS_APP": app} if app else {})}
    streamlit = str(Path(sys.executable).parent / "streamlit")
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen([streamlit, "run", "serve.py", "--server.headless", "true", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
                             "--server.fileWatcherType", "none",
                             *(["--server.baseUrlPath", base_path] if base_path else []), *extra_args],
                            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}" + (f"/{base_path.strip('/')}" if base_path else "")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as resp:
                    if resp.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = Path(log_path).read_text(errors="replace")[-3000:] if log_path else ""
                raise RuntimeError(f"streamlit did not start (exit {proc.poll()}):\n{tail}")
            time.sleep(0.3)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_path:
            out.close()


def _browser(pw, profile: str):
    """Headless Debian Chromium with a profile of its own (an empty cache when the folder is new)."""
    return pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=ARGS,
                                                 viewport={"width": 1500, "height": 1800})


FLOOR_APP = "bench/floor_page.py"


def _first_visit(db: str, pw, app: str = "") -> float:
    """A new server and a new browser profile: navigation to the Overview's (or ``app``'s) first chart, in
    seconds."""
    with running_dashboard(db, app=app) as (base, _proc), tempfile.TemporaryDirectory() as profile:
        ctx = _browser(pw, profile)
        try:
            page = ctx.new_page()
            t0 = time.perf_counter()
            page.goto(base + "/?range=all")
            _wait_for_chart(page)
            return time.perf_counter() - t0
        finally:
            ctx.close()


def measure(db: str, warm_visits: int = 3, first_visits: int = 3) -> dict:
    """B6: ``first_visits`` first visits (each on a newly started server, in a new browser profile: the median
    counts; one sample flipped the verdict from run to run), then ``warm_visits`` visits on the last server;
    B5 on that server after every page. As many first visits to the floor page, alternating with the
    Overview's (which goes first flips every round)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        firsts, floors = [], []
        for i in range(first_visits):
            if i % 2:
                floors.append(_first_visit(db, pw, FLOOR_APP))
            if i < first_visits - 1:  # the last first visit is the warm visits' first, below
                firsts.append(_first_visit(db, pw))
            if not i % 2:
                floors.append(_first_visit(db, pw, FLOOR_APP))
        with running_dashboard(db) as (base, proc):
            rss_idle = _rss_mb(proc.pid)
            visits = []
            with tempfile.TemporaryDirectory() as profile:
                ctx = _browser(pw, profile)
                for _ in range(1 + warm_visits):
                    page = ctx.new_page()
                    t0 = time.perf_counter()
                    page.goto(base + "/?range=all")
                    _wait_for_chart(page)
                    visits.append(time.perf_counter() - t0)
                    _wait_idle(page)
                    page.close()
                page = ctx.new_page()
                opened = []
                for path in _pages():
                    t0 = time.perf_counter()
                    page.goto(f"{base}/{path}?range=all")
                    _wait_idle(page, 300_000)  # the page's run and its fragments finished
                    opened.append((path or "overview", time.perf_counter() - t0))
                ctx.close()
            rss_after = _rss_mb(proc.pid)
    firsts.append(visits[0])
    cold, warm = statistics.median(firsts), statistics.median(visits[1:]) if len(visits) > 1 else float("nan")
    floor = statistics.median(floors)
    samples = ", ".join(f"{t:.2f}" for t in firsts)
    floor_samples = ", ".join(f"{t:.2f}" for t in floors)
    return {
        "B5": {"title": "dashboard server memory after opening every page",
               "rss_idle_mb": rss_idle, "rss_mb": rss_after, "pages": opened,
               "summary": f"{rss_after:,.0f} MB RSS after {len(opened)} pages (idle {rss_idle:,.0f} MB)",
               "met": "yes" if rss_after <= 600 else "no",
               "text": f"Server RSS {rss_idle:,.0f} MB after start, **{rss_after:,.0f} MB** after opening "
                       + ", ".join(f"{p} ({s:.1f} s)" for p, s in opened) + " (all-time range)."},
        "B6": {"title": "navigation to the Overview's first chart (headless Chromium)",
               "cold_s": cold, "first_visits_s": firsts, "warm_s": warm, "floor_s": floor,
               "floor_first_visits_s": floors, "floor_ratio": cold / floor,
               "summary": f"first visit {cold:.2f} s (median of {len(firsts)}: {samples}), then {warm:.2f} s "
                          f"(median of {warm_visits}); floor page {floor:.2f} s: {cold / floor:.2f}×",
               "met": "yes" if cold <= 2 else ("warm only" if warm <= 2 else "no"),
               "text": f"First visit right after `streamlit run serve.py` started (it warms up before it takes "
                       f"connections), in a new browser profile (empty cache), Streamlit's query cache empty: "
                       f"median **{cold:.2f} s** of {len(firsts)} server starts ({samples} s); later visits "
                       f"(browser cache and query cache filled): median **{warm:.2f} s** of {warm_visits}. Range: "
                       "all time. The chart counts when its SVG is in its iframe (pages/charts.py). Baseline, "
                       "alternating with those first visits: the same first visit to `bench/floor_page.py` (one "
                       "chart drawn the same way from a constant frame, no database, no sidebar), served by the "
                       f"same `serve.py`: median **{floor:.2f} s** ({floor_samples} s). The Overview's first visit "
                       f"is **{cold / floor:.2f}×** the floor's, {cold - floor:+.2f} s: what provlens adds above "
                       "Streamlit's own start-up and one chart."},
    }
