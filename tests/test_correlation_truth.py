"""The Entra <-> SCIM correlation on the demo database (built by the real CLI from the simulator),
compared with the simulator's ground truth: pairs, contradictions, Entra-only and SCIM-only sets;
the window is honoured; the correlation export has its contract columns."""

from __future__ import annotations

import csv
import shutil

import duckdb
import pytest

from ingest import exitcodes
from ingest.store import Store
from tests.conftest import run_cli


def _pairs(db) -> set[tuple[str, str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return set(con.execute("SELECT event_id, request_id FROM correlation "
                               "WHERE event_id IS NOT NULL AND request_id IS NOT NULL").fetchall())


def _precision_recall(got: set, want: set) -> tuple[float, float]:
    hit = len(got & want)
    return hit / max(len(got), 1), hit / max(len(want), 1)


def test_pairs_precision_and_recall_at_least_99_percent(demo_db, truth):
    want = {tuple(p) for p in truth["scim"]["pairs"]}
    precision, recall = _precision_recall(_pairs(demo_db), want)
    print(f"correlation precision {precision:.4f} recall {recall:.4f} on {len(want)} true pairs")
    assert precision >= 0.99 and recall >= 0.99


def test_every_contradiction_is_found_with_its_kind(demo_db, truth):
    with duckdb.connect(str(demo_db), read_only=True) as con:
        found = set(con.execute("SELECT event_id, request_id, detail FROM correlation "
                                "WHERE match_class = 'contradiction'").fetchall())
    want = {(c["event_id"], c["request_id"], c["kind"]) for c in truth["scim"]["contradictions"]}
    assert want and want <= found
    assert len(found - want) <= max(1, len(want) // 10)


def test_entra_only_and_scim_only_match_the_truth(demo_db, truth):
    with duckdb.connect(str(demo_db), read_only=True) as con:
        entra_only = dict(con.execute("SELECT event_id, detail FROM correlation "
                                      "WHERE match_class = 'entra_only'").fetchall())
        scim_only = dict(con.execute("SELECT request_id, detail FROM correlation "
                                     "WHERE match_class = 'scim_only'").fetchall())
        suspicious = con.execute("SELECT count(*) FROM correlation WHERE match_class = 'entra_only' "
                                 "AND suspicious").fetchone()[0]
    want_entra = set(truth["scim"]["entra_only_event_ids"])
    p, r = _precision_recall(set(entra_only), want_entra)
    assert p >= 0.99 and r >= 0.99
    assert all(entra_only[e] == "skipped" for e in want_entra & set(entra_only))  # expected, not suspicious
    assert suspicious == 0
    want_scim = set(truth["scim"]["scim_only_request_ids"])
    p, r = _precision_recall(set(scim_only), want_scim)
    assert p >= 0.99 and r >= 0.99
    details = list(scim_only.values())
    assert details.count("probe") == truth["scim"]["probes"]
    assert details.count("other_client") == truth["scim"]["other_client"]


def test_correlate_command_honours_the_window(demo_db, truth, tmp_path):
    db = tmp_path / "w.duckdb"
    shutil.copy(demo_db, db)
    with duckdb.connect(str(db)) as con:  # the SCIM server's clock runs 100 s late
        con.execute("UPDATE scim_requests SET ts = ts + INTERVAL 100 SECOND")
    with Store.open(str(db)) as store:  # the store never changes a request: rewrite its sorted copy, which
        store.resort_scim_by_user()     # the correlation reads
    want = {tuple(p) for p in truth["scim"]["pairs"]}
    proc = run_cli("ingest", "correlate", "--db", str(db), "--window", "30")
    assert proc.returncode == exitcodes.OK, proc.stderr
    assert _precision_recall(_pairs(db), want)[1] < 0.5  # outside a 30 s window: no longer joined
    proc = run_cli("ingest", "correlate", "--db", str(db))  # default window (a few minutes) absorbs the skew
    assert proc.returncode == exitcodes.OK and "matched" in proc.stderr
    precision, recall = _precision_recall(_pairs(db), want)
    assert precision >= 0.99 and recall >= 0.99


@pytest.mark.parametrize("dataset,columns", [
    ("correlation", ["event_id", "request_id", "match_key", "match_class"]),
    ("scim-requests", ["request_id", "ts", "method", "path", "status", "operation", "resource_id", "external_id",
                       "user_name", "scim_type", "error_detail", "duration_ms"]),
    ("scim-rejects", ["file", "line", "reason", "excerpt"]),
])
def test_exports_have_the_contract_columns(demo_db, truth, tmp_path, dataset, columns):
    out = tmp_path / f"{dataset}.csv"
    proc = run_cli("queries", "export", dataset, "--db", str(demo_db), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    with out.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert [c for c in reader.fieldnames if c in columns] == columns  # all there, in this order
    if dataset == "scim-requests":
        assert len(rows) == truth["scim"]["total"]
    if dataset == "correlation":
        pairs = {(r["event_id"], r["request_id"]) for r in rows if r["event_id"] and r["request_id"]}
        assert _precision_recall(pairs, {tuple(p) for p in truth["scim"]["pairs"]})[1] >= 0.99
