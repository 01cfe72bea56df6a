"""The dashboard server's open files (issue 27): Streamlit 1.67 kept each closed tab's session, with its script
event loop (3 fds), parked for reconnects; at the default limit of 1,024 fds the server died with EMFILE after a
few hundred page views. serve.py installs pages/session_loops.py, which closes a parked session's loop.

Against the real ``streamlit run serve.py``: 200 page loads, each a new WebSocket session that runs the Overview to
the end (tests/streamlit_client.py speaks Streamlit's protocol; a browser page per load would take minutes here),
and the server's open fds (/proc/PID/fd) grow by less than 20. A tab that reconnects to its parked session still
runs its page."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.dashboard import running_dashboard
from tests import reliability_harness as h
from tests.streamlit_client import exceptions, page_load, session_id

LOADS, MAX_GROWTH = h.FD_PAGE_LOADS, h.FD_MAX_GROWTH  # docs/reliability.md states them


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture(scope="module")
def server(demo_db, tmp_path_factory):
    log = tmp_path_factory.mktemp("fds") / "server.log"
    with running_dashboard(str(demo_db), log) as (base, proc):
        yield base, proc, log


def test_page_loads_do_not_leak_file_descriptors(server):
    base, proc, _log = server
    first = page_load(base, "range=all")  # the first visit opens what lives as long as the server (database...)
    assert exceptions(first) == []
    before = _fds(proc.pid)
    for i in range(LOADS):
        messages = page_load(base, "range=all" if i % 2 else "range=7d", page_name="" if i % 3 else "cycles")
        assert messages[-1].WhichOneof("type") == "script_finished"
    # A parked session's loop is closed once its last script run has finished (retried every 2 s while one
    # runs), so the count settles shortly after the last load; a leak never does (3 fds per load stay open).
    deadline = time.monotonic() + 60
    while (after := _fds(proc.pid)) - before >= MAX_GROWTH and time.monotonic() < deadline:
        time.sleep(0.5)
    print(f"server fds: {before} before, {after} after {LOADS} page loads")
    assert after - before < MAX_GROWTH, (before, after)


def test_a_tab_that_reconnects_to_its_parked_session_still_runs(server):
    base, _proc, log = server
    first = page_load(base, "range=all")
    again = page_load(base, "range=all", page_name="cycles", session_id=session_id(first))
    assert session_id(again) == session_id(first)  # the parked session was resumed, not replaced
    assert exceptions(again) == [] and again[-1].WhichOneof("type") == "script_finished"
    assert "script event loop is closed" not in Path(log).read_text(errors="replace")
