"""``python -m queries export`` takes the event filters (--status, --action, --error-code, --skip-category,
--identity, --cycle, --change): the events, failures and skipped files hold exactly the rows a plain query keeps, and
the manifest records the filters."""

from __future__ import annotations

import csv
import json

import duckdb

from queries.db import release
from tests.conftest import run_cli


def _plain_ids(db, sql: str, params: list) -> list[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        ids = sorted(r[0] for r in con.execute(f"SELECT id FROM events WHERE {sql}", params).fetchall())
    release(str(db))
    return ids


def _exported_ids(path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as fh:
        return sorted(row["id"] for row in csv.DictReader(fh))


def test_cli_export_applies_the_event_filters(demo_db, tmp_path):
    with duckdb.connect(str(demo_db), read_only=True) as con:
        code, upn = con.execute("SELECT error_code, min(source_upn) FROM events WHERE status = 'failure' "
                                "AND source_upn IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()
        skip, cycle = con.execute("SELECT skip_category, min(cycle_id) FROM events WHERE skip_category IS NOT NULL "
                                  "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()
    release(str(demo_db))
    cases = [
        ("events", ["--status", "failure", "--error-code", code], "status = 'failure' AND error_code = ?", [code]),
        ("failures", ["--identity", upn.upper()], "status = 'failure' AND lower(source_upn) = lower(?)", [upn]),
        ("skipped", ["--skip-category", skip, "--cycle", cycle], "status = 'skipped' AND skip_category = ? "
         "AND cycle_id = ?", [skip, cycle]),
        ("events", ["--action", "update", "--status", "success", "--status", "skipped"],
         "action = 'update' AND status IN ('success', 'skipped')", []),
    ]
    for i, (dataset, flags, where, params) in enumerate(cases):
        out = tmp_path / f"{i}-{dataset}.csv"
        run_cli("queries", "export", dataset, "--db", str(demo_db), "--out", str(out), *flags, check=True)
        want = _plain_ids(demo_db, where, params)
        assert want and _exported_ids(out) == want, (dataset, flags)
        manifest = json.loads((tmp_path / f"{out.name}.manifest.json").read_text())
        assert manifest["rows"] == len(want) and manifest["filters"], manifest
