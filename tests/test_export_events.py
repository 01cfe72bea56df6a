"""``ingest demo`` then ``queries export events`` returns exactly the simulator's events."""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter

from tests.conftest import run_cli

REQUIRED = ["id", "activity_time", "tenant_id", "job_id", "cycle_id", "change_id", "service_principal_id",
            "service_principal_name", "action", "status", "error_code", "error_category", "error_reason",
            "source_id", "source_name", "source_upn", "target_id", "user_name", "duration_ms"]
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def _export(db, out, *extra):
    proc = run_cli("queries", "export", "events", "--db", str(db), "--out", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_export_equals_ground_truth(demo_db, tmp_path, truth, sim):
    rows = _export(demo_db, tmp_path / "events.csv")
    assert list(rows[0].keys())[: len(REQUIRED)] == REQUIRED
    ids = sorted(r["id"] for r in rows)
    assert len(rows) == truth["events"]["total"]
    assert hashlib.sha256("\n".join(ids).encode()).hexdigest() == truth["events"]["ids_sha256"]
    assert Counter(r["status"] for r in rows) == Counter(truth["events"]["by_status"])
    assert Counter(r["action"] for r in rows) == Counter(truth["events"]["by_action"])
    assert Counter(r["error_code"] for r in rows if r["status"] == "failure") == Counter(
        truth["events"]["failures_by_code"])
    assert all(ISO_UTC.match(r["activity_time"]) for r in rows)
    times = [(r["activity_time"], r["id"]) for r in rows]
    assert times == sorted(times)  # stable order: time, then id


def test_exported_fields_match_the_source_events(demo_db, tmp_path, sim):
    rows = {r["id"]: r for r in _export(demo_db, tmp_path / "events.csv")}
    for event in sim.events[:: max(1, len(sim.events) // 200)]:
        row = rows[event["id"]]
        assert row["service_principal_id"] == event["servicePrincipal"]["id"]
        assert row["cycle_id"] == event["cycleId"]
        assert row["source_id"] == event["sourceIdentity"]["id"]
        assert row["activity_time"][:19] == event["activityDateTime"][:19]
        names = [m["newValue"] for m in event.get("modifiedProperties", []) if m["displayName"] == "userName"]
        upn = event["sourceIdentity"]["details"].get("UserPrincipalName")
        assert row["user_name"].lstrip("'") == (names[0] if names and names[0] else upn)


def test_export_filters_by_service_principal_and_time(demo_db, tmp_path, truth):
    app = truth["apps"][1]
    rows = _export(demo_db, tmp_path / "one.csv", "--service-principal", app["service_principal_id"])
    assert len(rows) == truth["events"]["by_service_principal"][app["service_principal_id"]]
    empty = _export(demo_db, tmp_path / "none.csv", "--since", "2001-01-01T00:00:00Z", "--until", "2001-01-02")
    assert empty == []
    assert (tmp_path / "none.csv").read_text().startswith("id,activity_time")


def test_export_bad_arguments_fail_cleanly(demo_db, tmp_path):
    proc = run_cli("queries", "export", "nope", "--db", str(demo_db), "--out", str(tmp_path / "x.csv"))
    assert proc.returncode != 0 and "unknown dataset" in proc.stderr
    proc = run_cli("queries", "export", "events", "--db", str(demo_db), "--since", "2026-02-01",
                   "--until", "2026-01-01", "--out", str(tmp_path / "x.csv"))
    assert proc.returncode != 0 and "--until" in proc.stderr
    proc = run_cli("queries", "export", "events", "--db", str(demo_db), "--out", str(tmp_path / "no/dir/x.csv"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("*.part")) and not (tmp_path / "x.csv").exists()
