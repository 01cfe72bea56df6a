"""Units: Retry-After in every form (incl. > 180 s and HTTP dates), rate parsing, the pacer's budget."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from ingest.graph.pacing import Pacer, RateError, parse_rate, parse_retry_after

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("header,seconds", [
    ("2", 2.0), ("2.128", 2.128), ("2,128", 2.128), (" 7 ", 7.0), ("0", 0.0), ("-3", 0.0),
    ("200", 200.0), ("3600", 3600.0),  # above the SDK's 180 s cut-off: still honoured (the budget decides)
    (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
    (format_datetime(NOW + timedelta(minutes=5), usegmt=True), 300.0),
    (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
    ("", None), (None, None), ("soon", None),
])
def test_retry_after_forms(header, seconds):
    got = parse_retry_after(header, now=NOW)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


def test_rate_parsing():
    assert parse_rate("5/10s") == (5, 10.0)
    assert parse_rate("100/1m") == (100, 60.0)
    assert parse_rate("off") is None
    with pytest.raises(RateError):
        parse_rate("fast")


def test_pacer_keeps_every_window_within_budget():
    clock = {"t": 0.0}

    async def fake_sleep(seconds):
        clock["t"] += seconds

    pacer = Pacer((5, 10.0), clock=lambda: clock["t"], sleep=fake_sleep)

    times = []

    async def send(n):
        for _ in range(n):
            await pacer.acquire()
            times.append(clock["t"])

    asyncio.run(send(23))
    assert len(times) == 23
    for i in range(len(times) - 5):
        assert times[i + 5] - times[i] >= 10.0  # never 6 requests within 10 s
    assert times[-1] < 23 / 5 * 10 + 1  # and the budget is used, not wasted


def test_pacer_off_never_waits():
    pacer = Pacer(None, sleep=lambda s: (_ for _ in ()).throw(AssertionError("slept")))
    asyncio.run(pacer.acquire())
    assert pacer.waited == 0
