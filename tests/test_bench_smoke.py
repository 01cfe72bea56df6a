"""A tiny run of the whole benchmark harness, so it cannot rot. No timing assertions: only that every
benchmark ran, measured what it says on the data it generated, and wrote a report."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_bench_smoke_runs_every_benchmark(tmp_path):
    proc = run_cli("bench", "--smoke", "--work", str(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    truth = json.loads((tmp_path / "data-3000" / "bulk-truth.json").read_text())
    scale = results["scales"][0]
    assert scale["events"] == truth["events"]
    assert scale["B2"]["events"] == truth["events"] and scale["B2"]["ours_s"] > 0
    assert not [q for q in scale["B4"]["queries"] if q["error"]], scale["B4"]["queries"]
    assert scale["B4"]["rows"] == truth["events"]  # counted by the pandas side's child process
    heaviest_twins = {c["query"] for c in scale["B4"]["pandas"] if c["pandas_median_ms"] > 0}
    assert heaviest_twins & set(scale["B4"]["heaviest"])  # the twins were timed, in the child
    # as the dashboard runs them: the attachment kept between calls, each series' first call attached afresh
    assert scale["B4"]["keep_s"] > 0 and all(q["cold_ms"] > 0 for q in scale["B4"]["queries"])
    assert results["machine"]["speed_duckdb_ms"] > 0 and results["machine"]["speed_python_ms"] > 0
    assert scale["B7"]["rows"] == truth["events"]
    assert scale["B8"]["requests"] == truth["scim_requests"]
    assert 0 < scale["B9"]["ratio"] < 5
    assert scale["B5"]["rss_mb"] > 0 and scale["B6"]["cold_s"] > 0 and len(scale["B6"]["first_visits_s"]) == 3
    # the floor page drew its chart (a missing plotly.js bundle fails the visit) as often as the Overview
    assert len(scale["B6"]["floor_first_visits_s"]) == 3 and scale["B6"]["floor_ratio"] > 0
    assert results["B1"]["events"] > 0 and results["B1"]["typed_rows"] > 0
    assert results["B3"]["pages"] == 20 and results["B3"]["seconds"] >= results["B3"]["minimum_s"]
    report = (tmp_path / "BENCHMARKS.md").read_text()
    assert "speed check at start" in report and "| cold ms |" in report
    for key in ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9"):
        assert f"| {key} |" in report and "not run in this run" not in report.split(f"| {key} |")[1].split("\n")[0]


def test_a_subset_run_that_rebuilds_the_store_measures_it_with_the_scim_trail(tmp_path):
    """``--only B2,B9`` builds a new store from the events; the SCIM trail is loaded into it (B8's untimed part
    and the correlation) although B8 is not reported, so B9 (and B4-B6) measure the whole store."""
    import duckdb

    proc = run_cli("bench", "--smoke", "--only", "B2,B9", "--work", str(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    truth = json.loads((tmp_path / "data-3000" / "bulk-truth.json").read_text())
    scale = results["scales"][0]
    assert "B8" not in scale and scale["B9"]["ratio"] > 0
    with duckdb.connect(str(tmp_path / "store-3000.duckdb"), read_only=True) as con:
        requests = con.execute("SELECT count(*) FROM scim_requests").fetchone()[0]
        correlated = con.execute("SELECT count(*) FROM correlation_requests").fetchone()[0]
    assert requests == truth["scim_requests"] and correlated > 0


def test_a_report_merged_from_merged_reports_lists_every_run(tmp_path):
    """``--merge-with`` an earlier merged report keeps the runs that report was made of (with their speed
    checks), and the benchmarks it holds that this run did not measure."""
    import shutil

    def bench(*args: str) -> dict:
        proc = run_cli("bench", "--smoke", "--reuse-data", "--work", str(tmp_path), *args, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads((tmp_path / "results.json").read_text())

    measured = bench("--only", "B9")
    shutil.copy(tmp_path / "results.json", tmp_path / "measured.json")
    merged = bench("--only", "none", "--merge-with", str(tmp_path / "measured.json"))
    shutil.copy(tmp_path / "results.json", tmp_path / "merged.json")
    again = bench("--only", "none", "--merge-with", str(tmp_path / "merged.json"))
    assert [r["date"] for r in merged["runs"]] == [measured["date"]]
    assert [(r["date"], r.get("merged_runs")) for r in again["runs"]] == [(merged["date"], 1),
                                                                          (measured["date"], 0)]
    assert again["runs"][1]["machine"] == measured["machine"]
    assert again["scales"][0]["B9"] == measured["scales"][0]["B9"]
    report = (tmp_path / "BENCHMARKS.md").read_text()
    assert "a report merged from the 1 runs below" in report
    assert (f"- {measured['date']} UTC, {measured['machine']['cpu']}, load {measured['machine']['load_at_start']}, "
            "speed check") in report


def test_ab_pages_times_every_page_and_view_on_both_sides(demo_db, tmp_path):
    """bench.ab_pages (B4 side by side with another checkout) runs each page's queries on both sides; here the
    baseline is this checkout itself on the same store."""
    import json

    from tests.conftest import ROOT, run_cli

    out = tmp_path / "ab.json"
    done = run_cli("bench.ab_pages", "--base-checkout", str(ROOT), "--base-db", str(demo_db), "--db", str(demo_db),
                   "--runs", "1", "--out", str(out), timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    pages = {row["page"] for row in result["pages"]}
    assert {"overview", "failures", "skipped", "violations", "cycles", "identity", "scim"} <= pages
    assert {row["view"] for row in result["pages"]} == {"all", "last_30_days", "one_app"}
    assert all(row["base_95"] > 0 and row["new_95"] > 0 for row in result["pages"])


def test_b10_runs_every_side_on_a_small_store(tmp_path, demo_db):
    """B10 (python -m bench.lake) on the demo store: every side of every dataset ran and returned the rows the
    dataset's reference query returns on the store; the section was written."""
    import duckdb

    from queries.db import bind
    from queries.lake_sql import dataset_sql

    ndjson = tmp_path / "events.ndjson"
    with duckdb.connect(str(demo_db), read_only=True) as con:
        con.execute(f"COPY (SELECT raw FROM events) TO '{ndjson}' (FORMAT csv, HEADER false, QUOTE '')")
        expected = {name: len(con.execute(dataset_sql(name), bind(dataset_sql(name), {})).fetchall())
                    for name in ("cycles", "skipped")}
    report = tmp_path / "B10.md"
    proc = run_cli("bench.lake", "--db", str(demo_db), "--ndjson", str(ndjson), "--work", str(tmp_path),
                   "--datasets", "cycles,skipped", "--report", str(report), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "b10.json").read_text())
    with duckdb.connect(str(demo_db), read_only=True) as con:
        assert results["write"]["events"] == con.execute("SELECT count(*) FROM events").fetchone()[0]
    assert results["write"]["copy_s"] > 0 and results["write"]["ingest_s"] > 0
    for row in results["read"][1:]:
        assert {side["rows"] for side in row["sides"].values()} == {expected[row["dataset"]]}, row
    assert "## B10" in report.read_text() and "Spark local[2] over the lake" in report.read_text()
