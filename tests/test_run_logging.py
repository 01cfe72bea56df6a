"""Run events go through Python's ``logging`` (issue 25): a standard handler a test attaches receives every event
of a real Graph pull with its fields, in the JSON formatter's line too, and never a secret."""

from __future__ import annotations

import io
import json
import logging

import pytest

from ingest import exitcodes
from ingest.graph.log import LOGGER_NAME, JsonLineFormatter, RunLog
from ingest.graph.pull import pull_graph
from simulator.graph_server import FakeGraphServer, GraphData
from tests.test_graph_pull import settings, sp_ids

TOKEN = "logging-test-token-41d9"
SECRET = "url-pw-a7f3e1"


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collect():
    handler = Collect()
    logging.getLogger("provlens").addHandler(handler)  # the parent of provlens.run, as an app would attach it
    yield handler
    logging.getLogger("provlens").removeHandler(handler)


def everything(record: logging.LogRecord) -> str:
    return " ".join([record.getMessage(), json.dumps(getattr(record, "fields", {}), default=str),
                     JsonLineFormatter().format(record)])


def test_a_standard_handler_receives_the_pull_events(sim, tmp_path, monkeypatch, collect, capfd):
    monkeypatch.setenv("PROVLENS_GRAPH_TOKEN", TOKEN)
    sp = sp_ids(sim)[0]
    with FakeGraphServer(GraphData.from_simulation(sim), token=TOKEN, faults=["2:429:retry-after=0"]) as server:
        out = pull_graph(settings(server, tmp_path / "l.duckdb", sp), RunLog("text"))
    assert out.exit_code == exitcodes.OK
    records = [r for r in collect.records if r.name == LOGGER_NAME]
    names = [r.event for r in records]
    assert names[0] == "graph_start" and "scope_start" in names and "slice_committed" in names
    assert names.count("retry") == out.retries == 1  # the 429
    done = next(r for r in records if r.event == "scope_done")
    scope = out.scopes[0]
    assert done.levelno == logging.INFO and done.summary is True
    assert {k: done.fields[k] for k in ("scope", "run_id", "pages", "events", "new", "updated", "rejected")} == {
        "scope": scope.scope, "run_id": scope.run_id, "pages": scope.pages, "events": scope.loaded.read,
        "new": scope.loaded.new, "updated": scope.loaded.updated, "rejected": scope.loaded.invalid}
    assert done.getMessage() == scope.summary()
    line = json.loads(JsonLineFormatter().format(done))  # the --log-format json line: the same fields as before
    assert list(line)[:4] == ["ts", "level", "event", "message"] and line["level"] == "info"
    assert line["event"] == "scope_done" and line["new"] == scope.loaded.new and line["ts"].endswith("Z")
    for record in records:
        assert TOKEN not in everything(record)
    # the text format printed the summary only (the info events went to the handler, not to the terminal)
    err = capfd.readouterr().err
    assert scope.summary() in err and "slice_committed" not in err and "retrying" not in err


def test_url_credentials_never_reach_a_handler(sim, tmp_path, monkeypatch, collect):
    monkeypatch.setenv("PROVLENS_GRAPH_TOKEN", TOKEN)
    with FakeGraphServer(GraphData.from_simulation(sim), token=TOKEN) as server:
        url = server.base_url.replace("http://", f"http://svc-user:{SECRET}@")
        stream = io.StringIO()
        out = pull_graph(settings(server, tmp_path / "c.duckdb", base_url=url), RunLog("json", stream=stream))
    assert out.exit_code in (exitcodes.OK, exitcodes.AUTH)
    records = [r for r in collect.records if r.name == LOGGER_NAME]
    start = next(r for r in records if r.event == "graph_start")
    assert start.fields["base_url"].startswith("http://REDACTED@127.0.0.1")
    for record in records:
        assert SECRET not in everything(record) and "svc-user" not in everything(record)
    printed = stream.getvalue()
    assert SECRET not in printed and len(printed.splitlines()) == len(records)  # one JSON line per record
