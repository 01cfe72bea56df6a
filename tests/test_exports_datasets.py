"""The exported datasets: columns as documented in docs/exports.md, contents equal to the simulator's truth."""

from __future__ import annotations

import csv
import re
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from queries.datasets import DATASETS
from queries.export import export
from tests.conftest import ROOT, run_cli


def _t(text: str) -> datetime:
    """Graph/our ISO times (7 or 6 fraction digits, or none) to a comparable datetime (microseconds)."""
    text = text.replace("Z", "")
    if "." in text:
        head, frac = text.split(".")
        text = f"{head}.{frac[:6]:0<6}"
    return datetime.fromisoformat(text)


def documented_columns() -> dict[str, list[str]]:
    table: dict[str, list[str]] = defaultdict(list)
    text = (ROOT / "docs" / "exports.md").read_text(encoding="utf-8")
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] in DATASETS:
            table[cells[0]].append(cells[1])
    return dict(table)


@pytest.fixture(scope="module")
def exported(demo_db, tmp_path_factory) -> dict[str, list[dict]]:
    out = tmp_path_factory.mktemp("exports")
    rows = {}
    for name in DATASETS:
        path = out / f"{name}.csv"
        export(str(demo_db), name, str(path))
        with open(path, newline="", encoding="utf-8") as fh:
            rows[name] = list(csv.DictReader(fh))
        rows[name + ":header"] = next(csv.reader(path.open(newline="", encoding="utf-8")))
    return rows


def test_every_dataset_has_exactly_the_documented_columns(exported):
    docs = documented_columns()
    assert set(docs) == set(DATASETS)
    for name, dataset in DATASETS.items():
        assert exported[name + ":header"] == docs[name], name
        assert list(dataset.columns) == docs[name], name


def test_readme_links_the_export_table():
    assert "docs/exports.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_list_prints_every_dataset_with_its_columns():
    proc = run_cli("queries", "list", check=True)
    for name, dataset in DATASETS.items():
        line = next(x for x in proc.stdout.splitlines() if x.startswith(f"{name}: "))
        assert len(line) > len(name) + 10
        assert ", ".join(dataset.columns) in proc.stdout


def test_failures_match_truth_and_count_consecutive_cycles(exported, truth, sim):
    rows = exported["failures"]
    assert len(rows) == truth["events"]["by_status"]["failure"]
    assert Counter(r["error_code"] for r in rows) == Counter(truth["events"]["failures_by_code"])
    assert [(r["activity_time"], r["id"]) for r in rows] == sorted((r["activity_time"], r["id"]) for r in rows)
    # Recompute the runs independently from the simulator's events.
    expected: dict[str, int] = {}
    runs: dict[tuple, set] = defaultdict(set)
    for e in sorted(sim.events, key=lambda e: (_t(e["activityDateTime"]), e["id"])):
        key = (e["servicePrincipal"]["id"], e["jobId"], e["sourceIdentity"]["id"])
        status = e["provisioningStatusInfo"]["status"]
        if status == "success":
            runs[key] = set()
        elif status == "failure":
            runs[key].add(e["cycleId"])
            expected[e["id"]] = len(runs[key])
    assert {r["id"]: int(r["consecutive_cycles"]) for r in rows} == expected
    assert max(expected.values()) > 1
    by_code = {r["error_code"]: r for r in rows}
    throttled = set(truth["target_throttling_event_ids"])
    assert {r["id"] for r in rows if r["http_status"] == "429"} == throttled
    assert all("retried automatically" in r["recommended_action"] for r in rows if r["id"] in throttled)
    for code, row in by_code.items():
        assert row["recommended_action"], code
        if row["http_status"] == "409":
            assert "duplicate userName" in row["recommended_action"]
        if row["http_status"] == "401":
            assert "SCIM token" in row["recommended_action"]
    custom = [r for r in rows if r["scim_type"]]
    assert custom and all(r["next_retry_at"].endswith("Z") for r in custom)


def test_skipped_match_truth(exported, truth):
    rows = exported["skipped"]
    expected = {k: v for k, v in truth["skips"]["by_category"].items() if v}
    assert dict(Counter(r["skip_category"] for r in rows)) == expected
    da_users = {(r["source_id"], r["service_principal_id"]) for r in rows if r["skip_category"] == "default_access"}
    assert da_users == {(u["source_id"], u["service_principal_id"]) for u in truth["skips"]["default_access_users"]}
    assert any(r["skip_reason"] == "NotEffectivelyEntitled" for r in rows)


def test_violations_match_truth(exported, truth):
    rows = {(r["kind"], r["service_principal_id"], r["source_id"]): r for r in exported["violations"]}
    expected = {(v["kind"], v["service_principal_id"], v["source_id"]): v for v in truth["violations"]
                if v["failed_events"]}
    assert set(rows) == set(expected)
    assert {k for k, _, _ in expected} >= {"duplicate_user_name", "non_work_email"}
    for key, v in expected.items():
        row = rows[key]
        assert row["state"] == v["state"], key
        assert int(row["occurrences"]) == v["failed_events"], key
        assert _t(row["first_seen"]) == _t(v["first_seen"]), key
        assert _t(row["last_seen"]) == _t(v["last_seen"]), key
        assert row["user_name"].lower() == v["user_name"].lower(), key
        if v["resolved_at"]:
            assert _t(row["resolved_at"]) == _t(v["resolved_at"]), key
        else:
            assert row["resolved_at"] == ""
        if v["kind"] == "non_work_email":
            assert row["email_domain"] == v["email_domain"]
            assert row["email_domain"] not in truth["org_domains"]
        assert row["evidence"] in ("entra", "both")


def test_violations_with_the_allowed_domains_given(demo_db, tmp_path, truth):
    out = tmp_path / "v.csv"
    run_cli("queries", "export", "violations", "--db", str(demo_db), "--out", str(out),
            *[x for d in truth["org_domains"] for x in ("--allowed-domain", d)], check=True)
    rows = list(csv.DictReader(out.open(newline="", encoding="utf-8")))
    assert Counter(r["kind"] for r in rows) == Counter(v["kind"] for v in truth["violations"] if v["failed_events"])


def test_cycles_match_truth(exported, truth):
    rows = exported["cycles"]
    assert len(rows) == len(truth["cycles"])
    assert [r["cycle_id"] for r in rows] == [c["cycle_id"] for c in truth["cycles"]]
    for row, c in zip(rows, truth["cycles"], strict=True):
        assert row["kind"] == c["kind"]
        assert int(row["events"]) == c["events"]
        assert _t(row["started_at"]) == _t(c["started_at"]) and _t(row["ended_at"]) == _t(c["ended_at"])
        assert int(row["created"]) + int(row["updated"]) + int(row["disabled"]) + int(row["deleted"]) \
            + int(row["other"]) == c["events"]
        assert int(row["success"]) + int(row["failure"]) + int(row["skipped"]) + int(row["warning"]) == c["events"]
    # Each missed cycle shows as a gap at least as long as the truth's (cycles with no events are
    # invisible in the log, so a gap can only look longer).
    for missed in truth["missed_cycles"]:
        after = [r for r in rows if r["service_principal_id"] == missed["service_principal_id"]
                 and _t(r["started_at"]) > _t(missed["expected_at"])]
        if after:
            assert float(after[0]["gap_before_min"]) > missed["gap_minutes"] - 5, missed


def test_sync_jobs_ingest_runs_and_rejects(exported, sim):
    assert len(exported["sync-jobs"]) == len(sim.job_snapshots)
    runs = exported["ingest-runs"]
    assert "demo" in {r["source"] for r in runs} and all(r["outcome"] == "success" for r in runs)
    order = [(r["started_at"], int(r["run_id"])) for r in runs]
    assert order == sorted(order)
    assert exported["ingest-rejects"] == []


def test_cycles_time_and_app_filters(demo_db, tmp_path, truth):
    app = truth["apps"][0]
    cycles = [c for c in truth["cycles"] if c["service_principal_id"] == app["service_principal_id"]]
    since, until = cycles[3]["started_at"], cycles[10]["started_at"]
    out = tmp_path / "c.csv"
    run_cli("queries", "export", "cycles", "--db", str(demo_db), "--out", str(out), "--since", since,
            "--until", until, "--service-principal", app["service_principal_id"], check=True)
    rows = list(csv.DictReader(out.open(newline="", encoding="utf-8")))
    assert [r["cycle_id"] for r in rows] == [c["cycle_id"] for c in cycles[3:10]]
    assert rows[0]["kind"] == cycles[3]["kind"]  # kind and gap come from the whole history, not the window
    assert rows[0]["gap_before_min"] != ""


def test_docs_table_is_well_formed():
    docs = documented_columns()
    for name, cols in docs.items():
        assert len(cols) == len(set(cols)), name
        assert all(re.fullmatch(r"[a-z_]+", c) for c in cols), name
    assert Path(ROOT / "docs" / "exports.md").exists()
