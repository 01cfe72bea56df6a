"""Command line of the ingester:
``python -m ingest {demo,files,scim,correlate,blobs,graph,run,migrate,compact,doctor,alerts,preflight} ...``
(see ``--help``).

Each subcommand registers itself in :func:`build_parser`; handlers return an exit code from
:mod:`ingest.exitcodes`. Errors are printed as one clear line, never as a stack trace.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone

from ingest import __version__, cliargs, exitcodes
from ingest.config import ConfigError, load_toml, resolve_db_path
from ingest.dbfile import disk_full, is_corruption
from ingest.lake.writethrough import add_lake_arguments
from ingest.metrics import add_metrics_arguments
from ingest.store import DatabaseLocked, NotAProvlensDatabase, StoreError
from simulator.story import MIN_USERS


def cmd_demo(args: argparse.Namespace) -> int:
    from ingest.demo import DemoRefused, build_demo

    try:
        outcome = build_demo(args.db, seed=args.seed, users=args.users, days=args.days, end=args.end,
                             quiet=args.quiet, force=args.force)
    except DemoRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    if outcome.backup:
        print(f"--force: the previous {args.db} was copied to {outcome.backup} before it was replaced",
              file=sys.stderr)
    print(f"demo database {args.db}: {outcome.loaded.read} events from the simulator "
          f"(seed {args.seed}, {args.users} users, {args.days} days)", file=sys.stderr)
    if outcome.loaded.read:  # the demo's Alerts page and attention list: the rules once, recorded, sent nowhere
        from ingest.alerts.notify import after_ingest

        after_ingest(args.db, {"alerts": {}})
    return exitcodes.OK if outcome.loaded.read else exitcodes.FAILED


def cmd_files(args: argparse.Namespace) -> int:
    from ingest.file_ingest import ingest_files, print_report

    outcome = ingest_files(args.db, args.paths, quiet=args.quiet)
    print_report(outcome, args.db)
    return outcome.exit_code


# ---- SCIM audit trail and correlation (issue 4; owner: SCIM ingest)
def _window(args: argparse.Namespace) -> tuple[float, float] | None:
    return (args.window, args.window) if args.window is not None else None


def cmd_scim(args: argparse.Namespace) -> int:
    from ingest.scim.ingest import ingest_scim, print_report
    from ingest.scim.mapping import MappingError, load_mapping

    try:
        mapping = load_mapping(args.mapping)
    except MappingError as exc:
        raise ConfigError(str(exc)) from exc
    outcome = ingest_scim(args.db, args.paths, mapping=mapping, strict=args.strict, quiet=args.quiet,
                          correlate=not args.no_correlate, window=_window(args),
                          follow_symlinks=args.follow_symlinks)
    print_report(outcome, args.db)
    return outcome.exit_code


def cmd_correlate(args: argparse.Namespace) -> int:
    from ingest.correlate import correlate
    from ingest.store import Store

    with Store.open(args.db) as store:
        result = correlate(store, window=_window(args))
    classes = ", ".join(f"{k} {v}" for k, v in sorted(result["classes"].items()))
    print(f"correlation: {classes or 'nothing to correlate'} ({result['seconds']:.2f} s) -> {args.db}",
          file=sys.stderr)
    return exitcodes.OK


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring a database written by an older provlens up to this version's schema (the dashboard and exports
    only read, so they never upgrade a store themselves); rebuilds the summaries whose definition changed, and
    catches up the summaries an interrupted fast pull deferred."""
    import time

    from ingest.schema import LATEST_VERSION
    from ingest.store import Store

    if not os.path.exists(args.db):
        print(f"error: database {args.db} does not exist", file=sys.stderr)
        return exitcodes.USAGE
    started = time.monotonic()
    def rebuilding(table: str) -> None:
        print(f"{args.db}: rebuilding summary {table} from the source tables ...", file=sys.stderr, flush=True)

    with Store.open(args.db, progress=rebuilding) as store:  # opening migrates; the store says what it applied
        before, added = store.version_before, store.migrations_applied
        caught_up = store.refresh_pending_derived()  # summaries an interrupted fast pull left behind
    if caught_up:
        print(f"{args.db}: summaries brought up to date (an interrupted pull had deferred them)",
              file=sys.stderr)
    if not added:
        print(f"{args.db}: already at schema version {LATEST_VERSION}", file=sys.stderr)
    else:
        print(f"{args.db}: schema version {before} -> {LATEST_VERSION} (applied "
              f"{', '.join(map(str, added))}; {time.monotonic() - started:.1f} s)", file=sys.stderr)
    return exitcodes.OK


def cmd_compact(args: argparse.Namespace) -> int:
    """Write a compacted copy of the store to ``--out`` (the store itself is only read; see ingest.compact)."""
    from ingest.compact import CompactUsageError, compact_copy

    try:
        result = compact_copy(args.db, args.out)
    except CompactUsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    mb = 1024 * 1024
    print(f"{args.out}: {result.rows:,} rows in {result.tables} tables, {result.bytes_after / mb:,.0f} MB "
          f"(the store: {result.bytes_before / mb:,.0f} MB; {result.seconds:.1f} s). To use it, stop the ingest "
          f"job, then move {args.out} over {args.db}.", file=sys.stderr)
    return exitcodes.OK


def _when(value: str) -> datetime:
    from ingest.timespec import TimeSpecError, parse_when

    try:
        return parse_when(value)
    except TimeSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cmd_alerts(args: argparse.Namespace) -> int:
    """Evaluate the alert rules (ingest/alerts/rules.py) as of ``--at`` (default now, UTC). ``--dry-run`` prints the
    active alerts and writes nothing; otherwise they go to the alert state and the targets (ingest/alerts/notify.py).
    ``--test TARGET`` sends a test message to one target."""
    import json

    from ingest.alerts.rules import evaluate
    from ingest.alerts.settings import load_alert_settings
    from ingest.dbfile import read_connection

    config = load_toml(args.config)
    settings = load_alert_settings(config)  # a bad [alerts.rules] is exit 2 before anything is read
    if args.test:
        from ingest.alerts.notify import send_test

        return send_test(config, args.test)
    now = args.at or datetime.now(timezone.utc)
    with read_connection(args.db) as con:
        alerts = evaluate(con, settings, now)
    if not args.dry_run:
        from ingest.alerts.notify import process

        return process(args.db, alerts, now=now, config=config)
    if args.format == "json":
        for alert in alerts:
            print(json.dumps(alert.as_json(), ensure_ascii=False))
    else:
        for alert in alerts:
            print(f"[{alert.severity}] {alert.rule} {alert.key}: {alert.message}")
            print(f"    since {alert.first_seen.isoformat()}; action: {alert.action}; view: {alert.url}")
        print(f"{len(alerts)} active alert{'s' if len(alerts) != 1 else ''} as of {now.isoformat()} "
              "(dry run: nothing recorded or sent)", file=sys.stderr)
    return exitcodes.OK


def build_parser() -> argparse.ArgumentParser:
    parser = cliargs.Parser(prog="python -m ingest", description="Load provisioning data into DuckDB.")
    parser.add_argument("--version", action="version", version=f"provlens {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", help="database file (default: PROVLENS_DB, provlens.toml, data/provlens.duckdb)")
        p.add_argument("--config", help="provlens.toml to read (default: ./provlens.toml if present)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")

    demo = sub.add_parser("demo", help="build a demo database from the built-in simulator")
    common(demo)
    demo.add_argument("--seed", type=int, default=7, help="the simulator's random seed")
    demo.add_argument("--users", type=cliargs.int_at_least(MIN_USERS), default=200,
                      help=f"users in the simulated tenant (at least {MIN_USERS})")
    demo.add_argument("--days", type=cliargs.int_at_least(1), default=14, help="days of simulated activity")
    demo.add_argument("--end", type=cliargs.iso_time, help="end of the simulated period (default: this hour, UTC)")
    demo.add_argument("--force", action="store_true",
                      help="replace a database that holds real (non-demo) data, after copying it to <db>.bak-<time>")
    demo.set_defaults(handler=cmd_demo)

    files = sub.add_parser("files", help="load Graph-style JSON exports (pages, arrays, NDJSON, .gz)")
    common(files)
    files.add_argument("paths", nargs="+", help="files, directories or globs")
    add_metrics_arguments(files, "files")
    add_lake_arguments(files)
    files.set_defaults(handler=cmd_files)

    scim = sub.add_parser("scim", help="load a SCIM server's audit trail (scim-audit/1 JSON Lines or CSV, .gz)")
    common(scim)
    scim.add_argument("paths", nargs="+", help="files, directories or globs (read incrementally)")
    scim.add_argument("--mapping", help="TOML/JSON file mapping the server's own log fields to ours")
    scim.add_argument("--strict", action="store_true", help="exit 7 when any line was rejected")
    scim.add_argument("--no-correlate", action="store_true", help="do not recompute the Entra correlation")
    scim.add_argument("--follow-symlinks", action="store_true",
                      help="read symbolic links found in directories or by globs (default: skip and report them)")
    scim.add_argument("--window", type=float, metavar="SECONDS",
                      help="correlation window around each event's activityDateTime (default 180)")
    add_metrics_arguments(scim, "scim")
    add_lake_arguments(scim)
    scim.set_defaults(handler=cmd_scim)

    corr = sub.add_parser("correlate", help="recompute the Entra <-> SCIM correlation")
    common(corr)
    corr.add_argument("--window", type=float, metavar="SECONDS",
                      help="window around each event's activityDateTime (default 180)")
    corr.set_defaults(handler=cmd_correlate)

    migrate = sub.add_parser("migrate", help="upgrade a database written by an older provlens (the dashboard "
                                             "and exports read only and never upgrade it)")
    common(migrate)
    migrate.set_defaults(handler=cmd_migrate)

    compact = sub.add_parser("compact", help="write a compacted copy of the database (the space big changes "
                                             "freed is left out) to a new file")
    common(compact)
    compact.add_argument("--out", required=True, help="the new file (must not exist)")
    compact.set_defaults(handler=cmd_compact)

    # --- Azure Storage blobs written by diagnostic settings (ingest/blobs/)
    from ingest.blobs.ingest import add_blob_arguments, cmd_blobs

    blobs = sub.add_parser("blobs", help="load the diagnostic-settings blobs (insights-logs-provisioninglogs) of an "
                                         "Azure Storage account, incrementally")
    common(blobs)
    add_blob_arguments(blobs)
    add_metrics_arguments(blobs, "blobs")
    add_lake_arguments(blobs)
    blobs.set_defaults(handler=cmd_blobs)

    # --- Microsoft Graph pull and scheduled runs (ingest/graph/, ingest/run.py)
    from ingest.graph.command import add_graph_arguments, cmd_graph
    from ingest.run import add_run_arguments, cmd_run

    graph = sub.add_parser("graph", help="pull provisioning logs and job status from Microsoft Graph")
    common(graph)
    add_graph_arguments(graph)
    add_metrics_arguments(graph, "graph")
    add_lake_arguments(graph)
    graph.set_defaults(handler=cmd_graph)

    run = sub.add_parser("run", help="run every source in provlens.toml once, or --every interval (locked)")
    common(run)
    add_run_arguments(run)
    add_metrics_arguments(run, "run", after=False)  # published after each round by cmd_run
    add_lake_arguments(run)  # copied after each round by cmd_run
    run.set_defaults(handler=cmd_run)

    # --- preflight: check a setup before a scheduled run finds the problem (ingest/doctor.py)
    from ingest.doctor import add_doctor_arguments, cmd_doctor

    doctor = sub.add_parser("doctor", help="check a setup (config, credential, Graph permissions and licence, "
                                           "service principals, database, SCIM paths, mappings): one line each")
    common(doctor)
    add_doctor_arguments(doctor)
    doctor.set_defaults(handler=cmd_doctor, own_config=True)

    # --- Alerts (ingest/alerts/): rules, state, delivery
    alerts = sub.add_parser("alerts", help="evaluate the alert rules; record and send what changed, or print them "
                                           "with --dry-run")
    common(alerts)
    alerts.add_argument("--dry-run", action="store_true", help="print the active alerts; record and send nothing")
    alerts.add_argument("--format", choices=("text", "json"), default="text",
                        help="with --dry-run: text, or json (one JSON object per line per active alert)")
    alerts.add_argument("--at", type=_when, metavar="TIME",
                        help="evaluate as of this time: RFC 3339, a date, or a duration before now like 2h "
                             "(default: now, UTC)")
    alerts.add_argument("--test", metavar="TARGET", help="send a test message to this [[alerts.targets]] name")
    alerts.set_defaults(handler=cmd_alerts)

    # --- Preflight (ingest/preflight/, issue 26): predict the next cycle's failures before Entra runs it
    from ingest.preflight.command import add_preflight_arguments, cmd_preflight

    preflight = sub.add_parser("preflight", help="predict the next cycle's failures, skips and collisions from the "
                                                 "app's assignments, mappings and (optionally) the SCIM server's "
                                                 "accounts; --check compares a stored run with what Entra logged")
    common(preflight)
    add_preflight_arguments(preflight)
    preflight.set_defaults(handler=cmd_preflight)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ingest.loading import remove_stale_staging

    parser = build_parser()
    args = parser.parse_args(argv)
    remove_stale_staging()  # what killed runs left in the temp folder
    from ingest import metrics
    from ingest.graph.log import redact_url_credentials as clean  # no URL's credentials in an error line

    since = metrics.runs_mark()
    try:
        if not getattr(args, "own_config", False):  # doctor reports a bad config as one of its checks
            args.db = resolve_db_path(args.db, load_toml(args.config))
        if hasattr(args, "lake"):  # a bad --lake or [lake] is exit 2 before anything is loaded
            from ingest.lake.writethrough import check_settings

            check_settings(args, load_toml(args.config))
        try:
            code = args.handler(args)
            if hasattr(args, "lake") and args.command != "run":  # write-through (issue 28); run copies per round
                from ingest.lake.writethrough import write_through

                code = write_through(args.db, args, load_toml(args.config), code)
            return code
        finally:
            if getattr(args, "metrics_after", False) and metrics.runs_mark() > since:
                from ingest.alerts.notify import evaluate_after_ingest

                evaluate_after_ingest(args.db, load_toml(args.config))  # with [alerts] configured; never raises
                metrics.publish(args, args.db, since, args.metrics_command)
    except ConfigError as exc:
        print(f"error: {clean(str(exc))}", file=sys.stderr)
        return exitcodes.USAGE
    except (DatabaseLocked, NotAProvlensDatabase, StoreError) as exc:
        print(f"error: {clean(str(exc))}", file=sys.stderr)
        return exitcodes.DATABASE
    except KeyboardInterrupt:
        print("interrupted; committed data is kept, re-run to finish", file=sys.stderr)
        return exitcodes.PARTIAL
    except Exception as exc:  # noqa: BLE001 - one clear line for people, the traceback on request
        if disk_full(exc):
            print(f"error: no room to write ({clean(str(exc).splitlines()[0])}): free space where {args.db} and the "
                  "temp folder are, then run again (what was committed is kept; the run is recorded as failed)",
                  file=sys.stderr)
            return exitcodes.DATABASE
        if is_corruption(exc):  # a damaged file (a block's checksum), found while reading it
            print(f"error: {args.db} is damaged ({str(exc).splitlines()[0]}); it was left as it is: restore a "
                  "backup or load the data into a new database", file=sys.stderr)
            return exitcodes.DATABASE
        if os.environ.get("PROVLENS_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {clean(str(exc))} (set PROVLENS_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return exitcodes.FAILED
