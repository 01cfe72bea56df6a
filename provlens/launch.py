"""``provlens dashboard``: serve the warmed-up dashboard (``serve.py``) as ``scripts/dashboard.sh`` does.

Finds the dashboard's files in the installed package (``provlens/dashboard/``: ``serve.py``, ``app.py``, ``pages/``,
``static/`` and its ``.streamlit/config.toml``, which Streamlit reads beside the script it runs), or in the clone
when run from one. The settings are those of scripts/dashboard.sh: the database from ``--db`` > ``PROVLENS_DB`` >
``provlens.toml`` > ``data/provlens.duckdb``, the address and port from ``PROVLENS_ADDRESS``/``PROVLENS_PORT``
(127.0.0.1:8501), headless, no usage statistics. Before serving, a missing database is built from the demo and an
existing one brought up to date (``ingest migrate``); ``--read-only`` skips both (a dashboard beside a scheduled
ingest job, which alone writes) and sets ``PROVLENS_NO_DEMO=1`` so the app never builds a demo either. ``--lake URL``
(or ``PROVLENS_LAKE``) serves a lake instead, read-only, one tenant at a time (README, "Reading a lake from the
dashboard").
Arguments it does not know are passed to ``streamlit run`` (``--server.baseUrlPath x``). The process becomes
Streamlit's (exec), so a container's stop signal reaches the server.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from ingest import exitcodes
from ingest.config import ConfigError, resolve_db_path

NO_DEMO_ENV = "PROVLENS_NO_DEMO"
LAKE_ENV = "PROVLENS_LAKE"


def dashboard_dir() -> Path:
    """The folder holding serve.py, app.py, pages/ and static/: the installed package's, else the clone's."""
    here = Path(__file__).resolve().parent
    for folder in (here / "dashboard", here.parent):
        if (folder / "serve.py").is_file() and (folder / "app.py").is_file():
            return folder
    raise FileNotFoundError(f"the dashboard's files (serve.py, app.py) are missing beside {here}: reinstall provlens")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return port


def build_parser() -> argparse.ArgumentParser:
    from provlens.cli import OneLineParser

    parser = OneLineParser(prog="provlens dashboard", description=__doc__.split("\n\n")[0],
                           epilog="Other arguments go to `streamlit run` (e.g. --server.baseUrlPath provlens).")
    parser.add_argument("--db", help="database file (default: PROVLENS_DB, provlens.toml, data/provlens.duckdb)")
    parser.add_argument("--address", default=os.environ.get("PROVLENS_ADDRESS") or "127.0.0.1",
                        help="address to listen on (default: PROVLENS_ADDRESS, else 127.0.0.1; see the README's "
                             "'Security and login' before exposing it)")
    parser.add_argument("--port", type=_port, default=os.environ.get("PROVLENS_PORT") or "8501",
                        help="port (default: PROVLENS_PORT, else 8501)")
    parser.add_argument("--lake", help="read this lake instead of a database file, one tenant at a time (a local "
                        "folder or az://container/path; sets PROVLENS_LAKE; never writes the lake)")
    parser.add_argument("--read-only", action="store_true",
                        help="never write the database: no demo build, no migrate (a scheduled ingest writes it)")
    return parser


def streamlit_command(folder: Path, address: str, port: int, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(folder / "serve.py"),
            "--server.address", address, "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false",
            # the charts load plotly.js from static/ (also in .streamlit/config.toml beside serve.py)
            "--server.enableStaticServing", "true",
            # installed code does not change while it runs: no watcher over the package's files
            "--server.fileWatcherType", "none", *extra]


def _prepare(db: str) -> int:
    """scripts/dashboard.sh's first step: the demo where no database is, else migrate (a no-op when current)."""
    from ingest.cli import main as ingest_main

    if not os.path.exists(db):
        return ingest_main(["demo", "--db", db])
    return ingest_main(["migrate", "--db", db])


def main(argv: list[str]) -> int:
    args, extra = build_parser().parse_known_args(argv)
    lake = args.lake or os.environ.get(LAKE_ENV, "").strip()
    try:
        if args.lake and args.db:
            raise ConfigError("--lake and --db name two sources: the dashboard reads one")
        db = None if lake else resolve_db_path(args.db)
        folder = dashboard_dir()
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    if lake:  # the lake is only read; each tenant's local copy is built by the dashboard (ingest/lake/cache.py)
        os.environ[LAKE_ENV] = lake
    else:
        os.environ["PROVLENS_DB"] = db
    if args.read_only or lake:
        os.environ[NO_DEMO_ENV] = "1"
    else:
        code = _prepare(db)
        if code != exitcodes.OK:
            return code
    command = streamlit_command(folder, args.address, args.port, extra)
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "nt":  # no exec on Windows: wait for the server instead
        return subprocess.call(command)
    os.execv(command[0], command)
    return exitcodes.FAILED  # not reached
