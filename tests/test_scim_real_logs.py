"""Real SCIM servers' logs load request for request (issue 22 item 4). The reference is what the client sent and
got back, never the ingest's own output:

- the committed capture (``tests/data/real/scim/``, written by ``capture.py``): nginx ``combined``, gunicorn's
  JSON and default logs, scim2-server's own wsgiref log (with ``examples/mappings/wsgiref-access-log.toml``);
- a live run: the real scim2-server under gunicorn (and behind Debian's nginx when installed) on 127.0.0.1,
  Entra-like requests sent through it, the servers stopped, the fresh logs ingested.

Each request's method, path, query, status and time (within the second the client sent it, the logs' own
precision, after conversion from the servers' UTC-5 clock) and the number of requests are checked.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest

from ingest.scim.ingest import ingest_scim
from ingest.scim.mapping import load_mapping
from tests.conftest import ROOT
from tests.scim_live import nginx_binary, run_capture

REAL = ROOT / "tests" / "data" / "real" / "scim"
OWN_LOG_MAPPING = ROOT / "examples" / "mappings" / "wsgiref-access-log.toml"


def _load(db: Path, path: Path, mapping=None):
    kw = {"mapping": load_mapping(mapping)} if mapping else {}
    return ingest_scim(str(db), [str(path)], quiet=True, correlate=False, **kw)


def _rows(db: Path, path: Path) -> list[dict]:
    with duckdb.connect(str(db), read_only=True) as con:
        cur = con.execute("SELECT request_id, epoch(ts) AS t, method, path, query, status, duration_ms, user_name, "
                          "operation, is_probe, client_ip FROM scim_requests WHERE source_file = ? "
                          "ORDER BY source_line", [str(path)])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def _check(rows: list[dict], sent: list[dict], log: str) -> None:
    """Every request the client sent and nothing else. Matched by content, not by line order: a threaded server
    logs a request when its response is done (scim2-server's wsgiref log wrote a 401 after the next DELETE)."""
    assert len(rows) == len(sent), log
    assert len({r["request_id"] for r in rows}) == len(rows), log  # no two requests share a key
    unused = list(range(len(sent)))
    for row in rows:
        where = f"{log}: {row['method']} {row['path']} {row['status']} at {row['t']}"
        # The logs write whole seconds (CLF): the logged second lies between the client's send and answer.
        match = next((i for i in unused if (sent[i]["method"], sent[i]["path"], sent[i]["query"], sent[i]["status"])
                      == (row["method"], row["path"], row["query"], row["status"])
                      and int(sent[i]["t_before"]) <= row["t"] <= sent[i]["t_after"] + 1), None)
        assert match is not None, (where, sent)
        unused.remove(match)
        assert row["user_name"] == sent[match]["user_name"], where  # from the filter; access logs carry no body
        assert row["client_ip"] == "127.0.0.1", where
        assert row["is_probe"] == (match == 0), where  # only the first: a userName filter on a random GUID
    assert unused == [], log


def _check_durations(rows: list[dict]) -> None:
    assert all(r["duration_ms"] is not None and 0 <= r["duration_ms"] < 10_000 for r in rows)


def test_committed_real_logs_load_every_request(tmp_path):
    ref = json.loads((REAL / "requests.json").read_text(encoding="utf-8"))
    db = tmp_path / "real.duckdb"
    for name, file in ref["logs"].items():
        path = REAL / file
        out = _load(db, path, OWN_LOG_MAPPING if name == "server_own" else None)
        assert out.rejected == 0, (file, out.reasons)
        rows = _rows(db, path)
        _check(rows, ref["sent"][name], file)
        assert all(r["request_id"].startswith("line:") for r in rows)  # none of these logs has a request id
        if name == "gunicorn_json":
            _check_durations(rows)  # %(M)s
        if name == "server_own":  # its INFO messages between the requests: counted, not loaded
            text = path.read_text(encoding="utf-8").splitlines()
            assert out.unmatched_skipped == sum(1 for line in text if line.startswith("INFO:")) > 0
    # The nginx line of a request and gunicorn's line of the same request are one second apart at most.
    nginx, json_log = _rows(db, REAL / "nginx-combined.log"), _rows(db, REAL / "gunicorn-json.log")
    assert all(abs(a["t"] - b["t"]) <= 1 for a, b in zip(nginx, json_log))
    # The times were written at -0500; read as UTC they would be 5 hours later than the client's clock.
    first = datetime.fromtimestamp(nginx[0]["t"], tz=timezone.utc)
    assert "-0500]" in (REAL / "nginx-combined.log").read_text(encoding="utf-8").splitlines()[0]
    assert abs(first.timestamp() - ref["sent"]["nginx_combined"][0]["t_before"]) < 2


def test_live_scim2_server_behind_gunicorn_and_nginx(tmp_path):
    pytest.importorskip("scim2_server", reason="scim2-server comes with requirements-dev.txt")
    pytest.importorskip("gunicorn", reason="gunicorn comes with requirements-dev.txt")
    capture = run_capture(tmp_path / "logs")
    logs = {"gunicorn_json": capture.gunicorn_json, "gunicorn_text": capture.gunicorn_text,
            "server_own": capture.server_own}
    if capture.nginx_combined is not None:
        logs["nginx_combined"] = capture.nginx_combined
    else:
        assert nginx_binary() is None
    db = tmp_path / "live.duckdb"
    for name, path in logs.items():
        out = _load(db, path, OWN_LOG_MAPPING if name == "server_own" else None)
        assert out.rejected == 0, (name, out.reasons)
        expected_format = {"gunicorn_json": "json", "server_own": "regex"}.get(name, "combined")
        assert out.formats == {expected_format: 1}, name
        rows = _rows(db, path)
        _check(rows, [s.__dict__ for s in capture.sent[name]], name)
        if name == "gunicorn_json":
            _check_durations(rows)
    # Read again from the start (a lost file state): nothing is added.
    with duckdb.connect(str(db)) as con:
        before = con.execute("SELECT count(*) FROM scim_requests").fetchone()[0]
        con.execute("DELETE FROM scim_file_state")
    again = ingest_scim(str(db), [str(p) for n, p in logs.items() if n != "server_own"], quiet=True,
                        correlate=False)
    assert again.new == 0 and again.duplicates == before - len(capture.sent["server_own"])
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (scripts/setup.sh dev installs it as root): checked without it")
