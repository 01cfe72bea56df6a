"""The argparse conventions of every provlens command line (``python -m ingest``, ``queries``, ``simulator``).

- :class:`Parser`: help shows each option's default (:class:`DefaultsFormatter`), and a bad argument is one line
  on stderr and exit 2 (``exitcodes.USAGE``), never a usage block or a traceback. Subparsers inherit both.
- Argument types that refuse out-of-range values while parsing (so they exit 2 like any bad argument):
  :func:`int_at_least`, :func:`positive_float`, :func:`iso_time`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import NoReturn

USAGE_EXIT = 2  # ingest.exitcodes.USAGE (not imported: the simulator uses this module too)


class DefaultsFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help when it has a default worth showing and the help does not
    already say what the default is."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "%(default)" in text or "default" in text.lower() or default is argparse.SUPPRESS:
            return text
        if default is None or default is False or default == [] or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit 2, and whose help shows defaults."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_EXIT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def fail(prog: str, message: str) -> NoReturn:
    """A usage error found after parsing: one line, exit 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(USAGE_EXIT)


def int_at_least(minimum: int):
    """An argparse type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum} (got {value})")
        return value

    parse.__name__ = "int"
    return parse


def positive_float(text: str) -> float:
    """An argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 (got {text})")
    return value


def iso_time(text: str) -> datetime:
    """An argparse type: an ISO-8601 time (UTC when it names no offset), returned in UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def this_hour() -> datetime:
    """Now, UTC, rounded down to the hour: the default end of simulated data (it lands in the dashboard's default
    view, the last 30 days)."""
    return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
