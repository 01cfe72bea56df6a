"""One per-identity named query side by side: this checkout and another (a baseline worktree), each on the store
its code wrote, alternating call by call over a sample of 40 userNames (3 rounds, the first one a warm-up). Both
sides must return the same rows (counts and correlated counts compared); the report gives p50/p95 per side and
the ratio.

    python -m bench.ab_query BASE_CHECKOUT BASE_DB NEW_CHECKOUT NEW_DB [QUERY]   (default scim_identity_timeline)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

_WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from queries.db import run, read_connection
from queries.filters import Filters
db = sys.argv[2]
with read_connection(db) as con:
    ids = [r[0] for r in con.execute("SELECT user_name FROM scim_requests WHERE user_name IS NOT NULL "
                                     "USING SAMPLE reservoir(40 ROWS) REPEATABLE (7)").fetchall()]
print(json.dumps(ids), flush=True)
for line in sys.stdin:
    t0 = time.perf_counter(); df = run(db, sys.argv[3], Filters(), identity=json.loads(line))
    dt = time.perf_counter() - t0
    print(json.dumps([dt, len(df), int(df["match_class"].notna().sum()) if "match_class" in df else 0]), flush=True)
"""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    query = args[4] if len(args) > 4 else "scim_identity_timeline"
    sides = {}
    for name, checkout, db in (("base", args[0], args[1]), ("new", args[2], args[3])):
        proc = subprocess.Popen([sys.executable, "-c", _WORKER, checkout, db, query], cwd=checkout, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env={**os.environ, "PROVLENS_READ_KEEP_S": "10"})
        sides[name] = (proc, json.loads(proc.stdout.readline()))
    times: dict[str, list[float]] = {"base": [], "new": []}
    for round_ in range(3):
        for identity in sides["new"][1]:
            got = {}
            for name, (proc, _) in sides.items():
                proc.stdin.write(json.dumps(identity) + "\n")
                proc.stdin.flush()
                seconds, rows, correlated = json.loads(proc.stdout.readline())
                got[name] = (rows, correlated)
                if round_:
                    times[name].append(seconds * 1000)
            if got["base"] != got["new"]:
                raise SystemExit(f"different rows for {identity!r}: {got}")
    for name, values in times.items():
        print(f"{name}: n={len(values)} p50={_pct(values, 50):.1f} ms p95={_pct(values, 95):.1f} ms")
    print(f"ratio new/base p50={_pct(times['new'], 50) / _pct(times['base'], 50):.2f} "
          f"p95={_pct(times['new'], 95) / _pct(times['base'], 95):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
