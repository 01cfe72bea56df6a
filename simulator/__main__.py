"""Command line: ``python -m simulator --out DIR [--seed 7] [--users 200] [--days 14] [--end ISO] [--page-size 500]``
writes a simulated tenant's Graph pages, SCIM audit trail, job snapshots and ground truth, and prints a one-line
summary. Bad arguments exit 2 with one line."""

from __future__ import annotations

import sys

from ingest.cliargs import Parser, int_at_least, iso_time, positive_float, this_hour

from .generator import generate
from .story import MIN_USERS
from .writer import write


def build_parser() -> Parser:
    parser = Parser(prog="python -m simulator",
                    description="Write a simulated tenant's provisioning logs, SCIM audit trail, job snapshots and "
                                "ground truth to files (deterministic: the same arguments, --end included, give the "
                                "same files).")
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    parser.add_argument("--users", type=int_at_least(MIN_USERS), default=200,
                        help=f"users in the tenant (at least {MIN_USERS}, so every story condition fits)")
    parser.add_argument("--days", type=positive_float, default=14, help="days of activity, ending at --end")
    parser.add_argument("--end", type=iso_time, default=None,
                        help="end of the simulated period, ISO-8601 (UTC unless it names an offset); default: now "
                             "rounded down to the hour, so the data lands in the dashboard's default 30 days (give "
                             "--end for files that do not change from one day to the next)")
    parser.add_argument("--page-size", type=int_at_least(1), default=500, help="events per Graph page file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    days = int(args.days) if args.days == int(args.days) else args.days
    end = args.end or this_hour()
    try:
        sim = generate(seed=args.seed, users=args.users, days=days, end=end)
        paths = write(sim, args.out, page_size=args.page_size)
    except OSError as exc:
        print(f"python -m simulator: error: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    n_files = len(paths["graph_pages"]) + 4
    print(f"simulator: {len(sim.events)} events, {len(sim.scim_records)} SCIM requests, "
          f"{len(sim.job_snapshots)} job snapshots, {n_files} files in {args.out} (ending {end:%Y-%m-%d %H:%M} UTC)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
