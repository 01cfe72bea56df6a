"""Prometheus metrics (``--metrics-textfile``, ``--pushgateway``): a real `ingest graph` against the fake Graph
server writes the textfile, read back with prometheus-client's own parser and held against the run's JSON report,
the fake server's request log, the simulator's ground truth and plain queries over the store; a push reaches a
local HTTP receiver with the same metrics."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ingest import exitcodes
from simulator.graph_server import FakeGraphServer, GraphData
from tests.conftest import run_cli
from tests.test_graph_pull import SINCE, UNTIL, sp_ids

TOKEN = "metrics-test-token-5b1e"


def samples(text: str) -> dict[str, dict[tuple, float]]:
    """{sample name: {(source, scope): value}} from exposition text, by prometheus-client's parser."""
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[(s.labels.get("source"), s.labels.get("scope"))] = s.value
    return out


def json_events(stderr: str) -> list[dict]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def graph_args(server, db, sps, *extra) -> list[str]:
    args = ["ingest", "graph", "--db", str(db), "--graph-url", server.base_url, "--rate", "off", "--since", SINCE,
            "--until", UNTIL, "--log-format", "json", "-q", "--no-audit-logs", *extra]
    for sp in sps:
        args += ["--service-principal-id", sp]
    return args


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def snapshots_ending_in_quarantine(sim) -> list[dict]:
    """The simulator's job snapshots, cut after the last Quarantine snapshot of the job that had one, so that job's
    latest status (what the fake Graph serves) is Quarantine."""
    last = max((s for s in sim.job_snapshots if s["job"]["status"]["code"] == "Quarantine"),
               key=lambda s: s["capturedAt"])
    job = last["job"]["id"]
    return [s for s in sim.job_snapshots if s["job"]["id"] != job or s["capturedAt"] <= last["capturedAt"]]


def test_textfile_holds_the_runs_metrics(sim, tmp_path):
    sps = sp_ids(sim)
    db = tmp_path / "m.duckdb"
    folder = tmp_path / "textfile"
    folder.mkdir()
    prom = folder / "provlens.prom"
    # two 429s (one with a Retry-After of 0) and a 503: retries and throttling the metrics must count
    faults = ["2:429:retry-after=0", "4:503:retry-after=0", "6:429:retry-after=0"]
    snapshots = snapshots_ending_in_quarantine(sim)
    quarantined = 0
    with FakeGraphServer(GraphData(sim.events, snapshots), token=TOKEN, faults=faults) as server:
        before = time.time()
        proc = run_cli(*graph_args(server, db, sps, "--metrics-textfile", str(prom)),
                       env={"PROVLENS_GRAPH_TOKEN": TOKEN})
        after = time.time()
        status_429 = sum(1 for _, status in server.log if status == 429)
    assert proc.returncode == exitcodes.OK, proc.stderr
    assert os.listdir(folder) == ["provlens.prom"]  # written beside it, then renamed: no temporary file left
    m = samples(prom.read_text(encoding="utf-8"))
    events = json_events(proc.stderr)
    done = {e["scope"]: e for e in events if e["event"] == "scope_done"}
    assert len(done) == len(sps)
    tenant = next(iter(done)).split("/")[0]

    con = duckdb.connect(str(db), read_only=True)
    for sp in sps:
        scope = f"{tenant}/{sp}"
        key = ("graph", scope)
        report = done[scope]
        stored = con.execute("SELECT count(*) FROM events WHERE service_principal_id = ?", [sp]).fetchone()[0]
        assert m["provlens_events_loaded_total"][key] == report["new"] == stored
        assert m["provlens_events_updated_total"][key] == report["updated"] == 0
        assert m["provlens_events_rejected_total"][key] == report["rejected"] == 0
        assert m["provlens_pages_total"][key] == report["pages"] > 0
        assert before <= m["provlens_last_success_timestamp_seconds"][key] <= after
        assert m["provlens_last_run_success"][key] == 1
        assert 0 < m["provlens_run_duration_seconds"][key] <= after - before
        # newest activity: the simulator's newest event of this service principal inside the pulled window
        newest = max(epoch(e["activityDateTime"]) for e in sim.events if e["servicePrincipal"]["id"] == sp
                     and epoch(SINCE) <= epoch(e["activityDateTime"]) < epoch(UNTIL))
        assert m["provlens_newest_activity_timestamp_seconds"][key] == pytest.approx(newest, abs=0.001)
        assert before - newest <= m["provlens_data_lag_seconds"][key] <= after - newest
        # jobs in quarantine: the latest snapshot the fake Graph serves of each of this service principal's jobs
        latest: dict[str, tuple[str, str]] = {}
        for snap in snapshots:
            if snap["servicePrincipalId"] == sp:
                job = snap["job"]
                if job["id"] not in latest or snap["capturedAt"] > latest[job["id"]][0]:
                    latest[job["id"]] = (snap["capturedAt"], job["status"]["code"])
        in_quarantine = sum(1 for _, code in latest.values() if code == "Quarantine")
        assert m["provlens_jobs_quarantined"][key] == in_quarantine
        quarantined += in_quarantine
    con.close()
    assert quarantined == 1
    # retries and 429s: the fake server's own log and the run's retry events
    assert sum(m["provlens_throttled_total"].values()) == status_429 == 2
    assert sum(m["provlens_retries_total"].values()) == sum(1 for e in events if e["event"] == "retry") == 3
    assert "provlens_active_alerts" not in m  # not reported until the alert state exists (issue 24)

    # a second run re-reads the same window: the counters are the store's sums over both runs
    with FakeGraphServer(GraphData.from_simulation(sim), token=TOKEN) as server:
        again = run_cli(*graph_args(server, db, sps, "--metrics-textfile", str(prom)),
                        env={"PROVLENS_GRAPH_TOKEN": TOKEN})
    assert again.returncode == exitcodes.OK, again.stderr
    m2 = samples(prom.read_text(encoding="utf-8"))
    done2 = {e["scope"]: e for e in json_events(again.stderr) if e["event"] == "scope_done"}
    for scope, report in done2.items():
        key = ("graph", scope)
        assert report["new"] == 0
        assert m2["provlens_events_loaded_total"][key] == done[scope]["new"]
        assert m2["provlens_pages_total"][key] == done[scope]["pages"] + report["pages"]
        assert m2["provlens_last_success_timestamp_seconds"][key] > m["provlens_last_success_timestamp_seconds"][key]


class _Receiver(BaseHTTPRequestHandler):
    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.requests.append((self.command, self.path, dict(self.headers), self.rfile.read(length)))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_POST = _record

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    httpd.requests, httpd.status = [], 200
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_pushgateway_receives_the_same_metrics(sim_dir, tmp_path, receiver):
    db = tmp_path / "p.duckdb"
    port = receiver.server_address[1]
    password = "push-pw-77c2"
    proc = run_cli("ingest", "files", str(sim_dir / "graph"), str(tmp_path / "missing.json"), "--db", str(db), "-q",
                   "--pushgateway", f"http://pusher:{password}@127.0.0.1:{port}")
    assert proc.returncode == exitcodes.OK, proc.stderr
    assert len(receiver.requests) == 1
    method, path, headers, body = receiver.requests[0]
    assert method == "PUT" and path == "/metrics/job/provlens/command/files"
    assert headers["Authorization"] == "Basic " + base64.b64encode(f"pusher:{password}".encode()).decode()
    m = samples(body.decode())
    con = duckdb.connect(str(db), read_only=True)
    stored, rejects = con.execute("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM ingest_rejects)"
                                  ).fetchone()
    con.close()
    key = ("files", "all")
    assert m["provlens_events_loaded_total"][key] == stored > 0
    assert m["provlens_events_rejected_total"][key] == rejects == 1  # the missing file
    assert m["provlens_last_run_success"][key] == 0  # something was rejected: a partial run
    assert "provlens_last_success_timestamp_seconds" not in m or key not in m["provlens_last_success_timestamp_seconds"]
    assert password not in proc.stderr + proc.stdout

    # the gateway refuses: one warning line, the ingest's own exit code stands
    receiver.status = 500
    again = run_cli("ingest", "files", str(sim_dir / "graph"), "--db", str(db), "-q",
                    "--pushgateway", f"http://pusher:{password}@127.0.0.1:{port}")
    assert again.returncode == exitcodes.OK, again.stderr
    warnings = [line for line in again.stderr.splitlines() if line.startswith("warning: metrics not pushed")]
    assert len(warnings) == 1 and "Traceback" not in again.stderr
    assert password not in again.stderr and "REDACTED@127.0.0.1" in warnings[0]


def test_ingest_run_writes_every_sources_metrics(sim, sim_dir, tmp_path):
    """`ingest run` (a Graph source, then a files source over the same events): one textfile with both sources."""
    from tests.test_run_lock import TOKEN as RUN_TOKEN
    from tests.test_run_lock import write_config

    db, config, prom = tmp_path / "r.duckdb", tmp_path / "provlens.toml", tmp_path / "provlens.prom"
    with FakeGraphServer(GraphData.from_simulation(sim), token=RUN_TOKEN) as server:
        write_config(config, server, sim, sim_dir)
        proc = run_cli("ingest", "run", "--config", str(config), "--db", str(db), "-q", "--metrics-textfile",
                       str(prom), env={"PROVLENS_GRAPH_TOKEN": RUN_TOKEN})
    assert proc.returncode == exitcodes.OK, proc.stderr
    m = samples(prom.read_text(encoding="utf-8"))
    loaded = m["provlens_events_loaded_total"]
    # a graph source pulls the directory audit log too (its own source, counted in directory_audits rows)
    assert {source for source, _ in loaded} == {"graph", "graph-audit", "files"}
    audit_loaded = sum(v for (source, _), v in loaded.items() if source == "graph-audit")
    assert audit_loaded == sim.truth["directory_audits"]["provisioning_total"]
    loaded = {key: v for key, v in loaded.items() if key[0] != "graph-audit"}
    assert sorted(scope.rpartition("/")[2] for source, scope in loaded if source == "graph") == sorted(sp_ids(sim))
    con = duckdb.connect(str(db), read_only=True)
    total, by_files = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE ingest_run_id IN (SELECT run_id FROM ingest_runs "
        "WHERE source = 'files')) FROM events").fetchone()
    con.close()
    assert sum(loaded.values()) == total == sim.truth["events"]["total"]
    assert loaded[("files", "all")] == by_files == 0  # the Graph source had loaded every event already
    assert all(v == 1 for v in m["provlens_last_run_success"].values())
