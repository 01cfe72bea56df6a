"""The benchmarks B1-B9 of issue 7. Each returns a dict of results for :mod:`bench.report`."""

from __future__ import annotations

import ast
import json
import os
import time
from pathlib import Path

from bench.harness import PY, ROOT, alternate, percentile, python_measured


def _fresh(path: Path) -> Path:
    for p in (path, Path(str(path) + ".wal")):
        if p.exists():
            p.unlink()
    return path


# --------------------------------------------------------------------------- B2: files ingest
def b2_files_ingest(ndjson: Path, events: int, work: Path, reps: int) -> dict:
    ours_db, ceil_db = work / "b2-ours.duckdb", work / "b2-ceiling.duckdb"

    def ours():
        return python_measured(["-m", "ingest", "files", "--db", str(_fresh(ours_db)), str(ndjson), "-q"])

    from bench.sides import ceiling_columns

    columns = ndjson.parent / "ceiling-columns.txt"  # detected once per data set, outside the timing
    if not columns.exists():
        columns.write_text(ceiling_columns(str(ndjson)))

    def ceiling():
        return python_measured(["-m", "bench.sides", "ceiling", str(_fresh(ceil_db)), str(ndjson), str(columns)])

    comp = alternate(ours, ceiling, reps)
    _fresh(ceil_db)
    return {"events": events, "reps": reps, "ours_s": comp.a_median, "ceiling_s": comp.b_median,
            "ours_eps": events / comp.a_median, "ceiling_eps": events / comp.b_median,
            "ratio": comp.a_median / comp.b_median,
            "ours_peak_mb": max(r.peak_rss_mb for r in comp.a), "db": str(ours_db)}


# --------------------------------------------------------------------------- B4: page queries
def page_queries() -> list[tuple[str, dict]]:
    """Every ``query("name", filters, k=v)`` call in pages/*.py, with its literal keyword arguments."""
    found: dict[str, dict] = {}
    for page in sorted((ROOT / "pages").glob("*.py")):
        tree = ast.parse(page.read_text())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "query"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                kwargs = {}
                for kw in node.keywords:
                    kwargs[kw.arg] = kw.value.value if isinstance(kw.value, ast.Constant) else ...
                found.setdefault(node.args[0].value, kwargs)
    return sorted(found.items())


def _samples(db: str) -> dict:
    from queries.db import read_connection

    with read_connection(db) as con:
        source_id, upn = con.execute(
            "SELECT source_id, any_value(source_upn) FROM events WHERE source_upn IS NOT NULL "
            "GROUP BY source_id ORDER BY count(*) DESC, source_id LIMIT 1").fetchone()
        cycle_id = con.execute("SELECT cycle_id FROM events GROUP BY cycle_id ORDER BY count(*) DESC, cycle_id "
                               "LIMIT 1").fetchone()[0]
    return {"source_id": source_id, "term": upn.split("@")[0][:6], "cycle_id": cycle_id, "identity": upn,
            "limit": 10, "bucket": "hour"}


def b4_queries(db: str, runs: int, pandas_reps: int = 3) -> dict:
    """Each page query ``runs`` times, as the dashboard runs it: the first call of each query's series
    attaches the file afresh with an empty buffer pool (``cold_ms``), the rest find it kept (queries/db.py,
    ``PROVLENS_READ_KEEP_S``) as a page's next query and a person's next click do."""
    from bench.pandas_equivalents import PANDAS
    from queries.db import keep_seconds, release, run
    from queries.filters import Filters

    samples = _samples(db)
    results = []
    filters = Filters()  # all time: the heaviest view a person can ask for
    try:
        for name, kwargs in page_queries():
            params = {k: (samples.get(k) if v is ... else v) for k, v in kwargs.items()}
            times = []
            error = None
            release(db)
            for _ in range(runs):
                t0 = time.perf_counter()
                try:
                    run(db, name, filters, **params)
                except Exception as exc:  # noqa: BLE001 - reported in the table, not hidden
                    error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
                    break
                times.append(time.perf_counter() - t0)
            results.append({"query": name, "params": params,
                            "p50_ms": percentile(times, 50) * 1000 if times else None,
                            "p95_ms": percentile(times, 95) * 1000 if times else None,
                            "cold_ms": times[0] * 1000 if times else None, "error": error})
    finally:
        release(db)  # later cases open the file with connections of their own
    timed = [r for r in results if r["p50_ms"] is not None]
    heaviest = sorted(timed, key=lambda r: -r["p50_ms"])
    # The pandas side in a child process (its frames hold ~12 GB at 5M events): bench/sides.py b4_pandas.
    asked = [{"query": r["query"], "params": r["params"]} for r in heaviest if r["query"] in PANDAS]
    child = python_measured(["-m", "bench.sides", "b4_pandas", db, json.dumps(asked, default=str),
                             str(pandas_reps)])
    side = json.loads(child.stdout.strip().splitlines()[-1])
    comparisons = [{"query": r["query"], "duckdb_p50_ms": r["p50_ms"], "pandas_median_ms": side["medians"][r["query"]],
                    "speedup": side["medians"][r["query"]] / r["p50_ms"]}
                   for r in heaviest if r["query"] in side["medians"]]
    return {"queries": results, "runs": runs, "keep_s": keep_seconds(), "heaviest": [r["query"] for r in heaviest[:3]],
            "pandas": comparisons, "rows": side["rows"], "scim_rows": side["scim_rows"],
            "pandas_peak_mb": child.peak_rss_mb}


# --------------------------------------------------------------------------- B7: CSV export
def b7_export(db: str, rows: int, work: Path, reps: int) -> dict:
    out_ours, out_pandas = work / "b7-ours.csv", work / "b7-pandas.csv"

    def ours():
        return python_measured(["-m", "queries", "export", "events", "--db", db, "--out", str(out_ours)])

    def pandas_side():
        return python_measured(["-m", "bench.sides", "pandas_export", db, str(out_pandas)])

    comp = alternate(ours, pandas_side, reps)
    size = out_ours.stat().st_size
    for f in (out_ours, out_pandas, Path(str(out_ours) + ".manifest.json")):
        if f.exists():
            f.unlink()
    return {"rows": rows, "reps": reps, "ours_s": comp.a_median, "pandas_s": comp.b_median,
            "ours_rows_per_s": rows / comp.a_median, "pandas_rows_per_s": rows / comp.b_median,
            "ours_peak_mb": max(r.peak_rss_mb for r in comp.a), "pandas_peak_mb": max(r.peak_rss_mb for r in comp.b),
            "csv_mb": size / 1e6}


# --------------------------------------------------------------------------- B9: store size
def b9_size(db: str, ndjson: Path, events: int) -> dict:
    import duckdb

    con = duckdb.connect(db)
    con.execute("CHECKPOINT")
    con.close()
    db_bytes = os.path.getsize(db)
    src_bytes = ndjson.stat().st_size
    return {"events": events, "db_bytes_per_event": db_bytes / events, "ndjson_bytes_per_event": src_bytes / events,
            "ratio": db_bytes / src_bytes, "db_mb": db_bytes / 1e6, "ndjson_mb": src_bytes / 1e6}


# --------------------------------------------------------------------------- B5/B6: dashboard
def b5_b6_dashboard(db: str) -> dict:
    from bench.dashboard import measure

    return measure(db)


# --------------------------------------------------------------------------- B8: correlation
def b8_correlation(db: str, data: Path, truth: dict) -> dict:
    """Load the SCIM trail (not timed), then time the correlation of all events with all requests."""
    python_measured(["-m", "ingest", "scim", "--db", db, "--no-correlate", "-q", str(data / "scim-audit.jsonl")])
    run = python_measured(["-m", "ingest", "correlate", "--db", db])
    return {"events": truth["events"], "requests": truth["scim_requests"], "seconds": run.seconds,
            "peak_mb": run.peak_rss_mb, "output": run.stderr.strip().splitlines()[-2:]}


# --------------------------------------------------------------------------- B1/B3: Graph
def b1_graph(work: Path, events: int, reps: int) -> dict:
    from bench.graph import b1
    from simulator.bulk import write_bulk

    data = work / "graph-b1"
    truth = write_bulk(data, events, scim=False)
    return b1(data, truth["events"], work, reps)


def b3_backfill(work: Path, pages: int, scale: float) -> dict:
    from bench.graph import b3
    from simulator.bulk import write_bulk

    data = work / "graph-b3"
    write_bulk(data, pages * 10, scim=False)
    return b3(data, work, pages=pages, scale=scale)


def move_db(src: str, dst: Path) -> str:
    os.replace(src, _fresh(dst))
    return str(dst)


__all__ = ["b1_graph", "b2_files_ingest", "b3_backfill", "b4_queries", "b5_b6_dashboard", "b7_export",
           "b8_correlation", "b9_size", "move_db", "page_queries", "PY"]
