"""B10 (issue 28): the lake against the DuckDB file, in one run on one store.

``python -m bench.lake --db STORE --ndjson EVENTS --work DIR`` measures, side by side:

- **write**: ``ingest files`` of the store's NDJSON into a new store (the baseline: how fast provlens loads the same
  events) against ``python -m queries lake`` copying the store into a new local lake, and its re-run (incremental:
  nothing changed);
- **read**: for each dataset, the named query on the DuckDB file (what ``queries export`` runs today), the same
  dataset's lake SQL (its reference query) on the file, on DuckDB over the lake, and on Spark ``local[2]`` over the
  lake. Each result is fetched whole (Arrow), as an export would.

Only ratios count (the machines are shared): each row is divided by the first side measured in the same run. A
side that passes ``--timeout`` is stopped and reported as "> timeout". Results go to ``DIR/b10.json`` and, unless
``--report`` says otherwise, ``bench/B10.md``, which ``bench/BENCHMARKS.md`` includes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.harness import ROOT, machine, python_measured
from bench.report import now_text

HEAVY = ("failures", "skipped", "recurring-failures", "violations", "cycles")


def _timed(run: Callable[[], int], cancel: Callable[[], None], timeout: float) -> tuple[float | None, int | None]:
    """Seconds and rows of ``run()``, or (None, None) when it passed ``timeout`` (``cancel`` stops it)."""
    timer = threading.Timer(timeout, cancel)
    timer.start()
    t0 = time.perf_counter()
    try:
        rows = run()
    except Exception as exc:  # noqa: BLE001 - a cancelled query raises its engine's own error
        if timer.is_alive():
            raise
        print(f"[bench] stopped after {timeout:.0f} s ({type(exc).__name__})", file=sys.stderr)
        return None, None
    finally:
        timer.cancel()
    return time.perf_counter() - t0, rows


def write_sides(db: str, ndjson: Path, work: Path, tenant: str) -> dict:
    """``ingest files`` of the NDJSON into a new store against the lake copy of ``db`` (and its no-op re-run)."""
    fresh = work / "b10-ingest.duckdb"
    lake = work / "b10-lake"
    for path in (fresh, Path(str(fresh) + ".wal")):
        path.unlink(missing_ok=True)
    shutil.rmtree(lake, ignore_errors=True)
    print("[bench] B10 write: ingest files (baseline)", file=sys.stderr)
    ingest = python_measured(["-m", "ingest", "files", "--db", str(fresh), str(ndjson), "-q"])
    import duckdb

    with duckdb.connect(db, read_only=True) as con:
        events = con.execute("SELECT count(*) FROM events").fetchone()[0]
        rows = sum(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in _lake_tables())
    print("[bench] B10 write: queries lake (first copy)", file=sys.stderr)
    first = python_measured(["-m", "queries", "lake", "--db", db, "--to", str(lake), "--tenant", tenant, "-q"])
    print("[bench] B10 write: queries lake (re-run, nothing changed)", file=sys.stderr)
    again = python_measured(["-m", "queries", "lake", "--db", db, "--to", str(lake), "--tenant", tenant, "-q"])
    store_bytes = Path(db).stat().st_size
    lake_bytes = sum(p.stat().st_size for p in lake.rglob("*") if p.is_file())
    files = sum(1 for p in lake.rglob("*.parquet"))
    fresh.unlink(missing_ok=True)
    return {"events": events, "rows": rows, "ingest_s": ingest.seconds, "ingest_events_per_s": events / ingest.seconds,
            "ingest_peak_mb": ingest.peak_rss_mb, "copy_s": first.seconds, "copy_events_per_s": events / first.seconds,
            "copy_rows_per_s": rows / first.seconds, "copy_peak_mb": first.peak_rss_mb,
            "rerun_s": again.seconds, "store_bytes": store_bytes,
            "lake_bytes": lake_bytes, "parquet_files": files, "lake": str(lake)}


def _lake_tables() -> list[str]:
    from ingest.lake.layout import LAKE_TABLES

    return list(LAKE_TABLES)


def read_sides(db: str, lake: str, tenant: str, datasets: list[str], reps: int, timeout: float,
               spark_master: str) -> list[dict]:
    """Each dataset on the file (named and lake SQL), on DuckDB over the lake and on Spark over the lake."""
    from ingest.dbfile import connect
    from queries.catalog import QUERIES
    from queries.db import bind
    from queries.lake_read import lake_connection
    from queries.lake_sql import dataset_sql
    from queries.spark_engine import register_lake, run_dataset, spark_session, stop_session

    params = {"since": None, "until": None, "sps": None, "job": None}
    store = connect(db, read_only=True)
    lake_con = lake_connection(lake, [tenant])
    t0 = time.perf_counter()
    spark = spark_session(spark_master)
    register_lake(spark, lake, [tenant])
    spark_start = time.perf_counter() - t0

    def duck(con, sql):
        return lambda: con.execute(sql, bind(sql, params)).to_arrow_table().num_rows

    rows_out = []
    for name in datasets:
        sql = dataset_sql(name)
        sides = {
            "file, named query": (duck(store, QUERIES[name].sql), store.interrupt),
            "file, lake SQL": (duck(store, sql), store.interrupt),
            "DuckDB over the lake": (duck(lake_con, sql), lake_con.interrupt),
            f"Spark {spark_master} over the lake": (lambda name=name: run_dataset(spark, name, params).num_rows,
                                                   spark.sparkContext.cancelAllJobs),
        }
        result = {"dataset": name, "sides": {}}
        for side, (run, cancel) in sides.items():
            times, rows = [], None
            for _ in range(reps):
                seconds, rows = _timed(run, cancel, timeout)
                if seconds is None:
                    times = []
                    break
                times.append(seconds)
            result["sides"][side] = {"median_s": statistics.median(times) if times else None, "rows": rows}
            took = f"{statistics.median(times):.2f} s" if times else f"> {timeout:.0f} s"
            print(f"[bench] B10 {name}: {side}: {took}", file=sys.stderr)
        rows_out.append(result)
    stop_session(spark)
    return [{"spark_start_s": spark_start}, *rows_out]


def _s(x: float | None, timeout: float) -> str:
    return f"> {timeout:,.0f}" if x is None else f"{x:,.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:,.2f}" if a is not None and b else "—"


def render(results: dict) -> str:
    w, timeout = results["write"], results["timeout_s"]
    lines = [
        "## B10 — the lake (issue 28)", "",
        f"`python -m bench.lake` on {results['date']} (UTC), {results['machine']['cpus']} cores; "
        f"{w['events']:,} events, {w['rows']:,} rows in the lake's tables. Ratios are against the first column "
        "of the same run.", "",
        "### Write", "",
        "| side | s | events/s | ratio |", "|---|---|---|---|",
        f"| `ingest files` of the NDJSON into a new store (baseline) | {w['ingest_s']:,.1f} | "
        f"{w['ingest_events_per_s']:,.0f} | 1.00 |",
        f"| `queries lake`: first copy of the store ({w['copy_rows_per_s']:,.0f} rows/s over all tables) | "
        f"{w['copy_s']:,.1f} | {w['copy_events_per_s']:,.0f} | {w['copy_s'] / w['ingest_s']:.2f} |",
        f"| `queries lake` again, nothing changed | {w['rerun_s']:,.1f} | — | {w['rerun_s'] / w['ingest_s']:.2f} |",
        "",
        f"Peak memory: `ingest files` {w['ingest_peak_mb']:,.0f} MB, `queries lake` {w['copy_peak_mb']:,.0f} MB.",
        "",
        f"Size: store file {w['store_bytes'] / 1e9:,.2f} GB, lake {w['lake_bytes'] / 1e9:,.2f} GB in "
        f"{w['parquet_files']:,} Parquet files (zstd).", "",
        "### Read (whole result fetched as Arrow; median of "
        f"{results['reps']}; Spark session start {results['read'][0]['spark_start_s']:.1f} s, not included)", "",
    ]
    reads = results["read"][1:]
    if reads:
        sides = list(reads[0]["sides"])  # named query on the file, lake SQL on the file, then the lake's engines
        lines += ["Ratios: the lake SQL on the file against the named query (what the reference costs), and each "
                  "engine over the lake against the same lake SQL on the file (what the lake costs).", "",
                  "| dataset | rows | " + " | ".join(f"{s} (s)" for s in sides) + f" | {sides[1]} ÷ {sides[0]} | "
                  + " | ".join(f"{s} ÷ {sides[1]}" for s in sides[2:]) + " |",
                  "|---|---|" + "---|" * (2 * len(sides) - 1)]
        for r in reads:
            vals = [r["sides"][s]["median_s"] for s in sides]
            ratios = [_ratio(vals[1], vals[0])] + [_ratio(v, vals[1]) for v in vals[2:]]
            rows = next((r["sides"][s]["rows"] for s in sides if r["sides"][s]["rows"] is not None), None)
            lines.append(f"| {r['dataset']} | {rows if rows is None else f'{rows:,}'} | "
                         + " | ".join(_s(v, timeout) for v in vals) + " | " + " | ".join(ratios) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.lake", description=__doc__.split("\n\n")[0])
    p.add_argument("--db", help="the store to copy and query (e.g. bench/out/store-5000000.duckdb)")
    p.add_argument("--ndjson", type=Path, help="the same events as NDJSON (the ingest baseline)")
    p.add_argument("--work", type=Path, default=ROOT / "bench" / "out", help="scratch folder (the lake goes here)")
    p.add_argument("--tenant", default="bench", help="the lake tenant to copy the store as")
    p.add_argument("--datasets", default=",".join(HEAVY), help="comma-separated datasets to time")
    p.add_argument("--reps", type=int, default=1, help="runs per side and dataset")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds before a side is stopped")
    p.add_argument("--spark-master", default="local[2]", help="Spark master for the Spark side")
    p.add_argument("--skip-write", action="store_true", help="reuse the lake of an earlier run in --work")
    p.add_argument("--report", type=Path, default=ROOT / "bench" / "B10.md", help="where to write the section")
    p.add_argument("--render-only", action="store_true", help="rewrite the section from --work's b10.json")
    args = p.parse_args(argv)
    if args.render_only:
        args.report.write_text(render(json.loads((args.work / "b10.json").read_text())))
        return 0
    if not args.db or not args.ndjson:
        p.error("--db and --ndjson are required (except with --render-only)")
    args.work.mkdir(parents=True, exist_ok=True)
    out = args.work / "b10.json"
    results = {"date": now_text(), "machine": machine(), "reps": args.reps, "timeout_s": args.timeout}
    if args.skip_write:
        results["write"] = json.loads(out.read_text())["write"]
    else:
        results["write"] = write_sides(args.db, args.ndjson, args.work, args.tenant)
        out.write_text(json.dumps(results, indent=2, default=str))
    results["read"] = read_sides(args.db, results["write"]["lake"], args.tenant, args.datasets.split(","),
                                 args.reps, args.timeout, args.spark_master)
    out.write_text(json.dumps(results, indent=2, default=str))
    args.report.write_text(render(results))
    print(f"[bench] B10 written to {args.report} and {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
