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


def test_pacer_counts_a_request_from_when_it_leaves():
    """A request held up between being allowed and leaving (token, middleware, a busy loop) is counted from
    when it leaves, so the next window starts from there and the server never sees one request too many."""
    clock = {"t": 0.0}

    async def fake_sleep(seconds):
        clock["t"] += seconds

    pacer = Pacer((2, 10.0), clock=lambda: clock["t"], sleep=fake_sleep)

    async def scenario():
        await pacer.acquire()  # allowed at 0, leaves at 0
        pacer.mark_sent()
        await pacer.acquire()  # allowed at 0 ...
        clock["t"] = 4.0
        pacer.mark_sent()  # ... but leaves at 4
        await pacer.acquire()  # the third may go 10 s after the first
        third = clock["t"]
        pacer.mark_sent()
        await pacer.acquire()  # the fourth 10 s after the second LEFT (4 s), not after it was allowed (0 s)
        return third, clock["t"]

    third, fourth = asyncio.run(scenario())
    assert 10.0 <= third < 10.5
    assert fourth >= 14.0


def test_pacer_counts_a_request_until_its_answer_arrives():
    """The server counts a request somewhere between its leaving and its answer; counting it from the answer
    is the only stamp no delay on the way can undercut (a late arrival made the server see 6 in a window)."""
    clock = {"t": 0.0}

    async def fake_sleep(seconds):
        clock["t"] += seconds

    pacer = Pacer((2, 10.0), clock=lambda: clock["t"], sleep=fake_sleep)

    async def scenario():
        await pacer.acquire()
        pacer.mark_sent()  # leaves at 0 ...
        clock["t"] = 1.5
        pacer.mark_done()  # ... answered at 1.5
        await pacer.acquire()
        pacer.mark_sent()
        pacer.mark_done()  # second: 1.5 -> 1.5
        await pacer.acquire()  # the third waits 10 s after the first ANSWER (1.5), not after it left (0)
        return clock["t"]

    assert asyncio.run(scenario()) >= 11.5


def test_graph_session_counts_requests_until_they_are_answered(sim):
    """Through the real SDK and HTTP: a token that takes 0.3 s to arrive (between being allowed and leaving)
    and a server that answers 0.2 s after the request arrives move the request's stamp by at least 0.5 s,
    so the stamp is taken when the answer is in, not when the request was allowed or left."""
    import time

    from kiota_abstractions.authentication import BaseBearerTokenAuthenticationProvider

    from ingest.graph.auth import _StaticTokenSource
    from ingest.graph.client import GraphSession
    from ingest.graph.log import RunLog
    from ingest.graph.pacing import RetryPolicy
    from simulator.graph_server import DEFAULT_TOKEN, FakeGraphServer, GraphData

    class SlowToken(_StaticTokenSource):
        async def get_authorization_token(self, uri, additional_authentication_context=None):
            await asyncio.sleep(0.3)
            return await super().get_authorization_token(uri, additional_authentication_context)

    pacer = Pacer((5, 10.0))

    async def one_request(base_url):
        provider = BaseBearerTokenAuthenticationProvider(SlowToken(DEFAULT_TOKEN))
        async with GraphSession(provider, base_url, pacer=pacer, policy=RetryPolicy(), log=RunLog()) as session:
            allowed = time.monotonic()
            page = await session.get_json(session.provisioning_request(filter=None, top=5), "provisioning")
            return allowed, page

    with FakeGraphServer(GraphData.from_simulation(sim), latency=0.2) as server:
        allowed, page = asyncio.run(one_request(server.base_url))
    assert page["value"], "the request really went through"
    assert len(pacer.sent) == 1 and pacer.sent[0][0] >= allowed + 0.5
