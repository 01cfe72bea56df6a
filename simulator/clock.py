"""Time arithmetic on integer ticks (100 ns since the Unix epoch, UTC) and ISO-8601 formatting."""

from __future__ import annotations

from datetime import datetime, timezone

TICKS_PER_SECOND = 10_000_000
SECOND = TICKS_PER_SECOND
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def from_datetime(value: datetime) -> int:
    """Convert an aware datetime to ticks (naive datetimes are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * SECOND + delta.microseconds * 10


def to_datetime(ticks: int) -> datetime:
    """Convert ticks to an aware UTC datetime (truncated to microseconds)."""
    seconds, rest = divmod(ticks, SECOND)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=rest // 10)


def _base(ticks: int) -> str:
    return to_datetime(ticks).strftime("%Y-%m-%dT%H:%M:%S")


def iso7(ticks: int) -> str:
    """Graph style: seven fractional digits, e.g. 2026-10-20T03:00:54.8948757Z."""
    return f"{_base(ticks)}.{ticks % SECOND:07d}Z"


def iso_s(ticks: int) -> str:
    """Whole seconds, e.g. 2026-10-20T03:05:08Z."""
    return f"{_base(ticks)}Z"


def iso_ms(ticks: int) -> str:
    """RFC 3339 with milliseconds, e.g. 2026-10-20T03:05:08.120Z."""
    return f"{_base(ticks)}.{(ticks % SECOND) // 10_000:03d}Z"


def floor_day(ticks: int) -> int:
    return ticks - ticks % DAY
