"""Credentials in ``--graph-url`` (``http://user:pw@host``) never reach a log line, text or JSON, nor an error
line (issue 27: the graph_start line echoed them)."""

from __future__ import annotations

import pytest

from ingest import exitcodes
from simulator.graph_server import FakeGraphServer, GraphData
from tests.conftest import run_cli

TOKEN = "test-token-url-creds"
SECRET = "pw-9c1d7e2f"
SINCE, UNTIL = "2026-10-30T00:00:00Z", "2026-11-01T00:00:00Z"


@pytest.fixture(scope="module")
def server(sim):
    with FakeGraphServer(GraphData.from_simulation(sim), token=TOKEN, max_top=999) as srv:
        yield srv


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_url_credentials_are_redacted_in_every_log_line(server, tmp_path, fmt):
    url = server.base_url.replace("http://", f"http://svc-user:{SECRET}@")
    proc = run_cli("ingest", "graph", "--db", str(tmp_path / "g.duckdb"), "--graph-url", url, "--rate", "off",
                   "--since", SINCE, "--until", UNTIL, "--max-wait", "5", "--log-format", fmt, "-q",
                   env={"PROVLENS_GRAPH_TOKEN": TOKEN})
    # httpx sends the URL's user:password as Basic auth in place of the token: the fake Graph answers 401.
    assert proc.returncode in (exitcodes.OK, exitcodes.AUTH) and "Traceback" not in proc.stderr, proc.stderr
    out = proc.stdout + proc.stderr
    assert SECRET not in out and "svc-user" not in out, out
    if fmt == "json":
        assert "http://REDACTED@127.0.0.1" in out  # graph_start names the URL without its credentials


def test_url_credentials_are_redacted_in_errors(tmp_path):
    for url in (f"http://svc-user:{SECRET}@example.com/v1.0", f"ftp://svc-user:{SECRET}@127.0.0.1/v1.0",
                f"http://svc-user:{SECRET}@127.0.0.1:9/v1.0"):
        proc = run_cli("ingest", "graph", "--db", str(tmp_path / "g.duckdb"), "--graph-url", url, "--rate", "off",
                       "--since", "2d", "--max-wait", "2", "--log-format", "json",
                       env={"PROVLENS_GRAPH_TOKEN": TOKEN})
        assert proc.returncode in (exitcodes.USAGE, exitcodes.UNREACHABLE), proc.stderr
        assert SECRET not in proc.stdout + proc.stderr, proc.stderr
