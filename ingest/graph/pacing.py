"""Pacing and waiting: Graph's request budget, ``Retry-After`` in all its forms, the retry budget.

Graph allows about 5 requests per 10 s per app per tenant for the reports APIs. :class:`Pacer` spaces
requests so that no window of ``per`` seconds holds more than ``requests`` of them (every attempt counts,
retries included), and a 429's ``Retry-After`` holds all requests until it has passed.

A request is counted from the moment it leaves (:meth:`Pacer.mark_sent`, an httpx request hook), not the
moment it was allowed: the work between the two (token, middleware, a busy event loop or GIL) would
otherwise shift some requests later than their stamp, and the server would see one window too many.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

# The stamp of the request the current task was allowed to send, until it leaves (see Pacer.mark_sent).
_PENDING_STAMP: ContextVar[list[float] | None] = ContextVar("provlens_pending_stamp", default=None)

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*$")


class RateError(ValueError):
    pass


def parse_rate(text: str) -> tuple[int, float] | None:
    """``5/10s`` -> (5, 10.0); ``off`` -> None (no pacing: a local test server)."""
    if text.strip().lower() in ("off", "none", "0"):
        return None
    m = _RATE.match(text)
    if not m:
        raise RateError(f"--rate {text!r}: expected N/Ts such as 5/10s, or off")
    count, span, unit = int(m.group(1)), float(m.group(2)), (m.group(3) or "s")
    span *= {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0}[unit]
    if count < 1 or span <= 0:
        raise RateError(f"--rate {text!r}: needs at least one request per positive time span")
    return count, span


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: ``2``, ``2.128``, ``2,128``, an HTTP date, or a
    large value (kept as is: the caller decides against its budget). ``None`` when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    number = text.replace(",", ".") if re.fullmatch(r"\d+,\d+", text) else text
    try:
        seconds = float(number)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if math.isnan(seconds):
        return None
    return max(0.0, min(seconds, 7 * 86400.0)) if math.isfinite(seconds) else 7 * 86400.0


@dataclass
class RetryPolicy:
    """How long one run may wait for Graph: in total, per request, and the backoff steps."""

    max_wait: float = 900.0  # total seconds of retry waits in one run before giving up
    max_attempts: int = 12  # per request
    backoff: float = 1.0  # first exponential backoff step (seconds)
    backoff_cap: float = 60.0


class Pacer:
    """At most ``requests`` sends in any ``per`` seconds; :meth:`hold` blocks everyone until a time."""

    # Margin added to each wait: the server's window and ours do not start at the same instant, and a request
    # reaches the server a little after it leaves. On this 2-core machine that delay reached 47 ms while the
    # loader thread's DuckDB work held both cores (the closest 5-apart arrivals at the fake server were
    # 1.003 s apart for a 1 s window with a 50 ms margin, and one run got a 429), so 100 ms.
    MARGIN = 0.1

    def __init__(self, rate: tuple[int, float] | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = asyncio.sleep):
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.sent: list[list[float]] = []  # one mutable [time] per request: allowed, then actually sent
        self.hold_until = 0.0
        self.waited = 0.0

    def delay_needed(self) -> float:
        now = self.clock()
        delay = max(0.0, self.hold_until - now)
        if self.rate:
            count, per = self.rate
            self.sent = [stamp for stamp in self.sent if stamp[0] > now - per]
            if len(self.sent) >= count:
                times = sorted(stamp[0] for stamp in self.sent)
                delay = max(delay, times[len(times) - count] + per - now + self.MARGIN)
        return delay

    async def acquire(self) -> None:
        """Wait until one more request fits the budget, then count it as sent (from now; :meth:`mark_sent`
        moves the stamp to when it really leaves)."""
        while True:
            delay = self.delay_needed()
            if delay <= 0:
                break
            self.waited += delay
            await self.sleep(delay)
        stamp = [self.clock()]
        self.sent.append(stamp)
        _PENDING_STAMP.set(stamp)

    def mark_sent(self) -> None:
        """The request this task acquired is leaving now: count it from this moment."""
        stamp = _PENDING_STAMP.get()
        if stamp is not None:
            stamp[0] = max(stamp[0], self.clock())
            _PENDING_STAMP.set(None)

    async def on_request(self, _request: object) -> None:
        """httpx ``request`` event hook: see :meth:`mark_sent`."""
        self.mark_sent()

    def hold(self, seconds: float) -> None:
        self.hold_until = max(self.hold_until, self.clock() + seconds)
