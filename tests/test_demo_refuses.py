"""``ingest demo`` never silently replaces real data (issue 27): a store that began as the demo but has since
received real events or SCIM requests is refused (exit 2) unless ``--force``, which keeps a backup copy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb

from tests.conftest import run_cli

DEMO = ("--users", "25", "--days", "1", "--end", "2026-10-02T00:00:00+00:00", "-q")


def _count(db: Path, sql: str) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def _real_data(tmp: Path) -> tuple[Path, Path]:
    events = tmp / "real.ndjson"
    events.write_text("".join(json.dumps({"id": f"real-{i}", "activityDateTime": "2026-10-01T12:00:00Z",
                                          "action": "Update"}) + "\n" for i in range(7)), encoding="utf-8")
    audit = tmp / "audit.jsonl"
    audit.write_text("".join(json.dumps({"ts": "2026-10-01T12:00:00Z", "request_id": f"real-r{i}", "method": "GET",
                                         "path": "/Users", "status": 200}) + "\n" for i in range(3)),
                     encoding="utf-8")
    return events, audit


def test_demo_refuses_a_demo_store_holding_real_data_and_force_keeps_a_backup(tmp_path):
    db = tmp_path / "store.duckdb"
    run_cli("ingest", "demo", "--db", str(db), *DEMO, check=True)
    demo_events = _count(db, "SELECT count(*) FROM events")
    # An untouched demo store is rebuilt without --force.
    run_cli("ingest", "demo", "--db", str(db), *DEMO, check=True)

    events, audit = _real_data(tmp_path)
    run_cli("ingest", "files", "--db", str(db), "-q", str(events), check=True)
    run_cli("ingest", "scim", "--db", str(db), "-q", "--no-correlate", str(audit), check=True)
    assert _count(db, "SELECT count(*) FROM events WHERE id LIKE 'real-%'") == 7

    proc = run_cli("ingest", "demo", "--db", str(db), *DEMO)
    assert proc.returncode == 2, proc.stderr
    assert "10 non-demo rows" in proc.stderr and "7 events" in proc.stderr and "3 SCIM requests" in proc.stderr
    assert "--force" in proc.stderr and "Traceback" not in proc.stderr
    assert _count(db, "SELECT count(*) FROM events WHERE id LIKE 'real-%'") == 7

    # A demo store built before provlens recorded the demo's runs in meta is read by its runs' sources.
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM meta WHERE key = 'demo_max_run_id'")
    con.close()
    proc = run_cli("ingest", "demo", "--db", str(db), *DEMO)
    assert proc.returncode == 2 and "10 non-demo rows" in proc.stderr, proc.stderr

    proc = run_cli("ingest", "demo", "--db", str(db), *DEMO, "--force")
    assert proc.returncode == 0, proc.stderr
    backup = Path(re.search(r"copied to (\S+) before", proc.stderr).group(1))
    assert backup.parent == tmp_path and backup.name.startswith("store.duckdb.bak-")
    assert _count(backup, "SELECT count(*) FROM events WHERE id LIKE 'real-%'") == 7
    assert _count(backup, "SELECT count(*) FROM scim_requests WHERE request_id LIKE 'real-%'") == 3
    assert _count(db, "SELECT count(*) FROM events WHERE id LIKE 'real-%'") == 0
    assert _count(db, "SELECT count(*) FROM events") == demo_events


def test_demo_refuses_a_store_that_never_was_the_demo(tmp_path):
    db = tmp_path / "tenant.duckdb"
    events, _ = _real_data(tmp_path)
    run_cli("ingest", "files", "--db", str(db), "-q", str(events), check=True)
    proc = run_cli("ingest", "demo", "--db", str(db), *DEMO)
    assert proc.returncode == 2, proc.stderr
    assert "does not hold demo data" in proc.stderr and "7 events" in proc.stderr
    assert _count(db, "SELECT count(*) FROM events") == 7
