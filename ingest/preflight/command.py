"""``python -m ingest preflight`` (issue 26): read one app's source side from Graph (and, with ``--scim-url``, the
SCIM server's accounts), find what the next cycle will fail or skip, keep the findings as a preflight run, print
them by kind. ``--check`` reads nothing from Graph: it prints how a stored run's findings compare with what Entra
logged since (confirmed, not yet, wrong) and the precision.

Exit codes (ingest/exitcodes.py): 0 done (findings or not), 1 the job or its schema cannot be used, 2 bad arguments,
4 Graph refused the credential or a permission, 5 Graph or the SCIM server could not be read, 6 the database.
"""

from __future__ import annotations

import argparse
import sys

from ingest import cliargs, exitcodes
from ingest.graph.auth import AUTH_METHODS, CLOUDS
from ingest.preflight.target import DEFAULT_TOKEN_ENV


def add_preflight_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--service-principal-id", metavar="ID",
                   help="the enterprise app (service principal object id) whose provisioning job to check "
                        "(required unless --check)")
    p.add_argument("--job-id", help="the provisioning job (default: the app's only job)")
    p.add_argument("--scim-url", metavar="URL",
                   help="also read the SCIM server's /Users at this base URL (e.g. https://app.example/scim/v2): "
                        "conflicts with existing accounts, orphans, disabled users still active")
    p.add_argument("--scim-token-env", metavar="VAR", default=DEFAULT_TOKEN_ENV,
                   help="environment variable holding the SCIM bearer token (never printed or stored)")
    p.add_argument("--allowed-domain", action="append", default=[], metavar="DOMAIN",
                   help="an email domain the app accepts (repeatable; default: the store's work domains plus the "
                        "assigned users' UPN domains)")
    p.add_argument("--check", action="store_true",
                   help="read nothing: compare a stored preflight run with what Entra logged since, print precision")
    p.add_argument("--run", type=cliargs.int_at_least(1), metavar="N",
                   help="with --check: the preflight run (default: the latest)")
    g = p.add_argument_group("Microsoft Graph (as for `ingest graph`)")
    g.add_argument("--tenant-id", help="Entra tenant id (env PROVLENS_TENANT_ID, AZURE_TENANT_ID)")
    g.add_argument("--client-id", help="app registration (client) id (env PROVLENS_CLIENT_ID, AZURE_CLIENT_ID)")
    g.add_argument("--auth", choices=AUTH_METHODS,
                   help="auto (default): PROVLENS_GRAPH_TOKEN, else a client secret from PROVLENS_CLIENT_SECRET, "
                        "else --certificate, else DefaultAzureCredential")
    g.add_argument("--certificate", help="client certificate (PEM/PFX) path")
    g.add_argument("--cloud", choices=sorted(CLOUDS), help="national cloud (default public)")
    g.add_argument("--graph-url", help="Graph base URL override, e.g. http://127.0.0.1:PORT/v1.0")
    g.add_argument("--timeout", type=float, help="seconds per HTTP request (default 60)")


def _print_findings(findings) -> None:
    from ingest.preflight.findings import KINDS

    by_kind: dict[str, list] = {}
    for f in findings:
        by_kind.setdefault(f.kind, []).append(f)
    for kind, (label, outcome, fix) in KINDS.items():
        found = by_kind.get(kind, [])
        if not found:
            continue
        print(f"{kind} ({label}): {len(found)}")
        print(f"    predicted: {outcome}")
        print(f"    fix: {fix}")
        for f in found:
            print(f"    - {f.user_principal_name or f.user_name or f.identity}: {f.detail}")


def cmd_check(args: argparse.Namespace) -> int:
    from ingest.preflight.check import latest_run, precision_rows, statuses

    run_id = args.run or latest_run(args.db)
    if run_id is None:
        print(f"error: {args.db} holds no preflight run; run python -m ingest preflight --service-principal-id ID "
              "first", file=sys.stderr)
        return exitcodes.USAGE
    rows = statuses(args.db, run_id)
    if not rows:
        print(f"preflight run {run_id}: no findings (or no such run)")
    for r in rows:
        print(f"[{r['status']}] {r['kind']} {r['user_principal_name'] or r['user_name'] or r['source_id']}: "
              f"{r['detail']}")
    for p in precision_rows(args.db, run_id):
        label = p["kind"] or "all"
        shown = "n/a (nothing decided yet)" if p["precision"] is None else f"{p['precision']:.2f}"
        print(f"{label}: {p['findings']} findings, {p['confirmed']} confirmed, {p['not_yet']} not yet, "
              f"{p['wrong']} wrong; precision {shown}", file=sys.stderr if p["kind"] else sys.stdout)
    return exitcodes.OK


def cmd_preflight(args: argparse.Namespace) -> int:
    from ingest.config import load_toml
    from ingest.graph.auth import AuthConfigError
    from ingest.graph.client import GraphAuthError, GraphError
    from ingest.graph.command import settings_from
    from ingest.preflight.findings import find, unknown_attributes, work_domains
    from ingest.preflight.target import TargetError, read_users, safe_url, token_from_env
    from ingest.store import Store
    from queries.preflight import WORK_DOMAINS_SQL

    if args.check:
        return cmd_check(args)
    if not args.service_principal_id:
        print("error: --service-principal-id is required (or --check)", file=sys.stderr)
        return exitcodes.USAGE
    if args.run is not None:
        print("error: --run goes with --check", file=sys.stderr)
        return exitcodes.USAGE
    settings = settings_from(args, load_toml(args.config).get("graph", {}), args.db)
    from ingest.preflight.effective import effective_users
    from ingest.preflight.source import PreflightError, read_source_model

    try:
        model = read_source_model(settings, args.service_principal_id, args.job_id)
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.FAILED
    except (AuthConfigError, GraphAuthError) as exc:
        print(f"error: Graph refused the credential or a permission ({str(exc).splitlines()[0]}); preflight needs "
              "Application.Read.All, Directory.Read.All and Synchronization.Read.All", file=sys.stderr)
        return exitcodes.AUTH
    except GraphError as exc:
        print(f"error: Graph could not be read ({str(exc).splitlines()[0]})", file=sys.stderr)
        return exitcodes.UNREACHABLE
    users = effective_users(model)
    targets = None
    if args.scim_url:
        try:
            targets = read_users(args.scim_url, token_from_env(args.scim_token_env))
        except TargetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exitcodes.UNREACHABLE
    with Store.open(args.db) as store:  # opened after the reads: the write lock is held only for this
        stored = [r[0] for r in store.con.execute(WORK_DOMAINS_SQL).fetchall() if r[0]]
        domains = work_domains(users, stored, args.allowed_domain or None)
        findings = find(users, model, targets, domains=domains)
        unknown = unknown_attributes(users)
        message = ("not evaluated (unknown): " + ", ".join(f"{a} ({n} users)" for a, n in unknown.items())
                   if unknown else None)
        run_id = store.record_preflight(
            {"service_principal_id": model.service_principal_id, "job_id": model.job_id, "users": len(users),
             "target_accounts": None if targets is None else len(targets),
             "scim_url": safe_url(args.scim_url) if args.scim_url else None, "work_domains": sorted(domains),
             "message": message},
            [f.row() for f in findings])
    _print_findings(findings)
    if message:
        print(f"mappings {message}: findings that need them say so", file=sys.stderr)
    print(f"preflight run {run_id}: {len(findings)} finding{'s' if len(findings) != 1 else ''} for "
          f"{len(users)} assigned user{'s' if len(users) != 1 else ''}"
          + ("" if targets is None else f" and {len(targets)} account{'s' if len(targets) != 1 else ''} in the app")
          + f"; kept in {args.db} (the Preflight page; python -m queries export preflight)", file=sys.stderr)
    return exitcodes.OK
