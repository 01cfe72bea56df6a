"""B4 side by side: every page's named queries, timed on this checkout and on another one (a baseline, e.g. a
worktree of an earlier commit) in the same run, alternating, under three views: all time, the dashboard's default
(the last 30 days of the data) and one app.

    python -m bench.ab_pages --base-checkout /path/to/old --base-db OLD.duckdb --db NEW.duckdb [--runs 15]

Each side runs in a worker process of its own checkout (its own code and its own store: the two stores hold the
same data, each in the shape its code writes). For each page, view and run the two workers take turns running
the page's queries once (each query's result fetched whole) and report the time; the report gives p50/p95 per
page and view for both sides and the ratio. The queries a page runs are found as ``bench.cases.page_queries``
finds them (every ``query("name", ...)`` call in pages/*.py), in each checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

_WORKER = r"""
import json, sys, time, ast
from pathlib import Path
from datetime import datetime, timedelta
root = Path(sys.argv[1]); db = sys.argv[2]
sys.path.insert(0, str(root))
from queries.db import run, read_connection
from queries.filters import Filters

def page_queries():
    out = {}
    for page in sorted((root / "pages").glob("*.py")):
        found = {}
        for node in ast.walk(ast.parse(page.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "query"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found.setdefault(node.args[0].value, {kw.arg: (kw.value.value if isinstance(kw.value, ast.Constant)
                                                               else None) for kw in node.keywords})
        if found:
            out[page.stem] = found
    return out

with read_connection(db) as con:
    last = con.execute("SELECT max(activity_time) FROM events").fetchone()[0]
    sp = con.execute("SELECT service_principal_id FROM events GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
    source_id, upn = con.execute("SELECT source_id, any_value(source_upn) FROM events WHERE source_upn IS NOT NULL "
                                 "GROUP BY source_id ORDER BY count(*) DESC, source_id LIMIT 1").fetchone()
    cycle_id = con.execute("SELECT cycle_id FROM events GROUP BY cycle_id ORDER BY count(*) DESC, cycle_id "
                           "LIMIT 1").fetchone()[0]
samples = {"source_id": source_id, "term": upn.split("@")[0][:6], "cycle_id": cycle_id, "identity": upn,
           "limit": 500, "bucket": "hour"}
views = {"all": Filters(), "last_30_days": Filters(since=last - timedelta(days=30)),
         "one_app": Filters(service_principal_ids=(sp,))}
pages = page_queries()
print(json.dumps({"pages": {p: sorted(q) for p, q in pages.items()}}), flush=True)
for line in sys.stdin:
    page, view = json.loads(line)
    t0 = time.perf_counter()
    for name, kwargs in pages.get(page, {}).items():
        run(db, name, views[view], **{k: (v if v is not None else samples.get(k)) for k, v in kwargs.items()})
    print(json.dumps(time.perf_counter() - t0), flush=True)
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _worker(checkout: Path, db: str) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(checkout), db], cwd=checkout, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "PROVLENS_READ_KEEP_S": "10"})
    return proc, json.loads(proc.stdout.readline())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ab_pages", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-checkout", required=True, help="the baseline's checkout (its own code)")
    p.add_argument("--base-db", required=True, help="the store the baseline's code wrote")
    p.add_argument("--db", required=True, help="the store this checkout's code wrote (same data)")
    p.add_argument("--runs", type=int, default=15, help="timed runs per page, view and side (after one warm-up)")
    p.add_argument("--out", help="write the results as JSON here")
    args = p.parse_args(argv)
    here = Path(__file__).resolve().parents[1]
    base, base_pages = _worker(Path(args.base_checkout), args.base_db)
    new, new_pages = _worker(here, args.db)
    results = []
    try:
        for page in sorted(set(base_pages["pages"]) | set(new_pages["pages"])):
            for view in ("all", "last_30_days", "one_app"):
                times: dict[str, list[float]] = {"base": [], "new": []}
                for i in range(args.runs + 1):
                    for side, proc in (("base", base), ("new", new)) if i % 2 else (("new", new), ("base", base)):
                        proc.stdin.write(json.dumps([page, view]) + "\n")
                        proc.stdin.flush()
                        took = json.loads(proc.stdout.readline())
                        if i:
                            times[side].append(took * 1000)
                row = {"page": page, "view": view,
                       **{f"{s}_{q}": round(_percentile(v, q), 1) for s, v in times.items() for q in (50, 95)}}
                row["p95_ratio"] = round(row["new_95"] / row["base_95"], 2) if row["base_95"] else None
                results.append(row)
                print(f"{page:12} {view:13} base p50 {row['base_50']:7.1f} p95 {row['base_95']:7.1f} | "
                      f"new p50 {row['new_50']:7.1f} p95 {row['new_95']:7.1f} | p95 new/base {row['p95_ratio']}",
                      flush=True)
    finally:
        for proc in (base, new):
            proc.stdin.close()
            proc.wait(timeout=60)
    if args.out:
        Path(args.out).write_text(json.dumps({"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                              "runs": args.runs, "pages": results, "queries": {
                                                  "base": base_pages["pages"], "new": new_pages["pages"]}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
