"""The one grammar for times and durations on every command line and in provlens.toml.

- a duration: a number and a unit, ``90s``, ``40m`` (or ``40min``), ``12h``, ``30d``, ``2w``;
- a point in time: RFC 3339 / ISO 8601 (``2026-11-01T08:00:00Z``; no offset means UTC), a date
  (``2026-11-01``: its UTC midnight), or a duration before now (``30d``: 30 days ago).

Every ``--since``/``--until`` (``ingest graph``, ``queries export``) and every duration setting (``--overlap``,
``--slice``, ``--every``) reads through here, so they accept the same text.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(w|d|h|m|min|s)\s*$", re.IGNORECASE)
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "min": 60, "s": 1}


class TimeSpecError(ValueError):
    """Text that is neither a duration nor a point in time; the message shows the accepted forms."""


def is_duration(text: str) -> bool:
    return bool(_DURATION.match(str(text)))


def parse_duration(text: str) -> timedelta:
    m = _DURATION.match(str(text))
    if not m:
        raise TimeSpecError(f"{text!r} is not a duration (e.g. 2w, 30d, 12h, 40m, 90s)")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_when(text: str | datetime, now: datetime | None = None) -> datetime:
    """A point in time (UTC): RFC 3339, a date, or a duration before ``now``."""
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=timezone.utc)
    if is_duration(text):
        return (now or datetime.now(timezone.utc)) - parse_duration(text)
    try:
        t = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        raise TimeSpecError(f"{text!r} is not a time: use RFC 3339 like 2026-11-01T08:00:00Z, a date like "
                            "2026-11-01, or a duration before now like 2w, 30d or 12h") from None
    return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)
