"""Pacing and waiting: Graph's request budget, ``Retry-After`` in all its forms, the retry budget.

Graph allows about 5 requests per 10 s per app per tenant for the reports APIs. :class:`Pacer` spaces
requests so that no window of ``per`` seconds holds more than ``requests`` of them (every attempt counts,
retries included), and a 429's ``Retry-After`` holds all requests until it has passed.

A request is counted in the window from the moment its answer arrives (:meth:`Pacer.mark_done`), the
latest moment the server can have counted it, so no window the server sees ever holds one request too
many, however late a request reaches it. Counting from when it leaves (an httpx request hook,
:meth:`Pacer.mark_sent`) was not enough on a busy 2-core machine: requests reached the fake server up
to ~0.2 s after leaving, and a 2,000-page backfill got one or two 429s. The price is one page's latency
per window (Graph: ~1 s in 10 s).
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

    # Margin added to each wait: timer granularity (the stamps already bound when the server counted).
    MARGIN = 0.02

    def __init__(self, rate: tuple[int, float] | None, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = asyncio.sleep):
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.sent: list[list[float]] = []  # one mutable [time] per request: allowed, left, answered
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
        """Wait until one more request fits the budget, then count it (from now; :meth:`mark_sent` and
        :meth:`mark_done` move the stamp to when it leaves and when it is answered)."""
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
        """The request this task acquired is leaving now: count it from this moment (until it is answered)."""
        stamp = _PENDING_STAMP.get()
        if stamp is not None:
            stamp[0] = max(stamp[0], self.clock())

    def mark_done(self) -> None:
        """The request this task acquired was answered (or failed): count it from now, the latest moment the
        server can have counted it."""
        stamp = _PENDING_STAMP.get()
        if stamp is not None:
            stamp[0] = max(stamp[0], self.clock())
            _PENDING_STAMP.set(None)

    async def on_request(self, _request: object) -> None:
        """httpx ``request`` event hook: see :meth:`mark_sent`."""
        self.mark_sent()

    def hold(self, seconds: float) -> None:
        self.hold_until = max(self.hold_until, self.clock() + seconds)
