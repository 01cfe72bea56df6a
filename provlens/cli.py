"""The ``provlens`` command: one entry point that dispatches to the project's command lines.

``provlens ingest ...`` is ``python -m ingest ...``, ``provlens queries ...`` is ``python -m queries ...`` and
``provlens doctor ...`` is ``python -m ingest doctor ...`` (each gets the rest of the command line unchanged);
``provlens dashboard`` serves the dashboard (:mod:`provlens.launch`). Bad arguments exit 2 with one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ingest import __version__, exitcodes


def _ingest(rest: list[str]) -> int:
    from ingest.cli import main

    return main(rest)


def _queries(rest: list[str]) -> int:
    from queries.cli import main

    return main(rest)


def _doctor(rest: list[str]) -> int:
    from ingest.cli import main

    return main(["doctor", *rest])


def _dashboard(rest: list[str]) -> int:
    from provlens.launch import main

    return main(rest)


# name -> (handler, help); the handler gets every argument after the name
COMMANDS = {
    "ingest": (_ingest, "load data into the database: the same arguments as `python -m ingest` "
                        "(provlens ingest --help)"),
    "queries": (_queries, "list, export and verify datasets: the same arguments as `python -m queries`"),
    "dashboard": (_dashboard, "serve the dashboard (provlens dashboard --help)"),
    "doctor": (_doctor, "check the configuration, credentials, permissions and database: `python -m ingest doctor`"),
}


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr and exit 2 (ingest/exitcodes.py: USAGE)."""

    def error(self, message: str):  # argparse calls this for every usage error
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(exitcodes.USAGE)


def build_parser() -> argparse.ArgumentParser:
    examples = Path(__file__).resolve().parent / "examples"
    if not examples.is_dir():  # running from the clone, not the installed package
        examples = Path(__file__).resolve().parent.parent / "examples"
    commands = "\n".join(f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items())
    parser = OneLineParser(
        prog="provlens", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"Entra ID provisioning logs and SCIM audit trail -> DuckDB -> dashboard.\n\ncommands:\n{commands}",
        epilog=f"Example SCIM log mappings (ingest scim --mapping): {examples / 'mappings'}")
    parser.add_argument("--version", action="version", version=f"provlens {__version__}")
    parser.add_argument("command", choices=list(COMMANDS), help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        handler, _ = COMMANDS[argv[0]]
        return handler(argv[1:])
    build_parser().parse_args(argv)  # --help / --version exit 0; anything else is an error (exit 2)
    return exitcodes.USAGE  # not reached: a known command was dispatched above
