"""Command line: python -m simulator --out DIR [--seed 7] [--users 200] [--days 14] [--end ISO]
[--page-size 500]; writes the files and prints a one-line summary."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from .generator import DEFAULT_END, generate
from .writer import write


def _parse_end(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--end", type=_parse_end, default=DEFAULT_END, help="ISO-8601 end (UTC)")
    parser.add_argument("--page-size", type=int, default=500)
    args = parser.parse_args(argv)
    days = int(args.days) if args.days == int(args.days) else args.days
    sim = generate(seed=args.seed, users=args.users, days=days, end=args.end)
    paths = write(sim, args.out, page_size=args.page_size)
    n_files = len(paths["graph_pages"]) + 4
    print(f"simulator: {len(sim.events)} events, {len(sim.scim_records)} SCIM requests, "
          f"{len(sim.job_snapshots)} job snapshots, {n_files} files in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
