"""The alerts' run: reconcile an evaluation's active alerts with the stored state, record the notifications due, send
them, mark them sent (issue 24). Called by ``python -m ingest alerts`` and after every ingest run.

Order and crash semantics (README "Get alerted"): the notifications are recorded ``pending`` in one transaction and
the store is closed; each is then sent (retried with backoff), every try recorded as it ends and the
notification marked ``sent`` in the same short transaction as its successful try.
A crash between "recorded" and "marked sent" leaves it pending, and the next run sends it: **at least once**. A
crash after the target accepted it but before the mark is the one case that repeats it (once per crash); nothing
recorded is lost. A delivery that fails is kept pending for the next run and never fails the ingest run.

``PROVLENS_ALERTS_TEST_PAUSE=before_send:SECONDS`` (or ``after_send:SECONDS``) is a test hook: the process sleeps
there, after printing ``alerts: test pause <point>``, so a test can SIGKILL it at that point. Never set it in
production.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import duckdb
from filelock import FileLock, Timeout

from ingest import exitcodes
from ingest.alerts import delivery
from ingest.alerts.model import Alert
from ingest.alerts.targets import AlertsConfig, load_alerts_config
from ingest.config import ConfigError
from ingest.dbfile import _is_local_file
from ingest.store import Store, StoreError

TEST_PAUSE_ENV = "PROVLENS_ALERTS_TEST_PAUSE"
# One process at a time records and sends (``<db>.alerts.lock``): two at once (an `ingest alerts` beside a scheduled
# run) would both send the same pending notification. The second waits this long, then leaves the work to the first.
LOCK_WAIT_S = 60.0


@contextmanager
def _alerts_lock(db_path: str) -> Iterator[bool]:
    """An exclusive lock on ``<db>.alerts.lock`` (filelock: flock on POSIX, msvcrt on Windows; released when the
    process ends, even on SIGKILL); yields whether it was taken within :data:`LOCK_WAIT_S`. A database that is not a
    local file takes no lock."""
    if not _is_local_file(db_path):
        yield True
        return
    path = f"{db_path}.alerts.lock"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    lock = FileLock(path, timeout=LOCK_WAIT_S, poll_interval=0.1)
    try:
        lock.acquire()
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def _say(line: str) -> None:
    print(f"alerts: {line}", file=sys.stderr, flush=True)


def _test_pause(point: str) -> None:
    """The test hook (see the module's docstring): sleep at ``point`` when the environment asks for it."""
    spec = os.environ.get(TEST_PAUSE_ENV, "")
    where, _, seconds = spec.partition(":")
    if where == point:
        _say(f"test pause {point}")
        time.sleep(float(seconds or 60))


def _config(config: dict[str, Any] | None) -> AlertsConfig:
    """The delivery settings, every target's URL present in the environment and understood by Apprise."""
    settings = load_alerts_config(config)
    for target in settings.targets:
        if not delivery.valid_url(target.url()):
            raise ConfigError(f"alert target {target.name!r}: the value of {target.url_env} is not an Apprise URL "
                              "(see the README, \"Get alerted\")")
    return settings


def _deliver(db_path: str, settings: AlertsConfig, pending: list[dict[str, Any]]) -> tuple[int, int]:
    """Send each pending notification and mark it; (sent, not delivered)."""
    targets = {t.name: t for t in settings.targets}
    sent = failed = 0
    for item in pending:
        target = targets.get(item["target"])
        if target is None:
            with Store.open(db_path) as store:
                store.give_up_delivery(item["delivery_id"], f"target {item['target']!r} is no longer configured",
                                       datetime.now(timezone.utc))
            failed += 1
            continue
        title, body = delivery.compose(item["kind"], item, settings.link(item["url"]))

        def record_try(ok: bool, error: str | None, delivery_id: int = item["delivery_id"]) -> None:
            """Each try in the outbox as it ends: marked sent, or its error kept (the store held only meanwhile)."""
            if ok:
                _test_pause("after_send")
            with Store.open(db_path) as store:
                store.finish_delivery(delivery_id, ok=ok, attempts=1, error=error, at=datetime.now(timezone.utc))

        outcome = delivery.send(target.url(), title, body, severity=item["severity"],
                                resolved=item["kind"] == "resolved", attempts=settings.delivery_attempts,
                                wait_seconds=settings.retry_wait_seconds, on_try=record_try)
        if outcome.ok:
            sent += 1
        else:
            failed += 1
            _say(f"{item['kind']} notification of {item['rule']} to {target.name!r} not delivered after "
                 f"{outcome.attempts} tries ({outcome.error}); the next run tries again")
    return sent, failed


def process(db_path, alerts: list[Alert], *, now: datetime, config: dict) -> int:
    """Reconcile ``alerts`` (an evaluation at ``now``) with the stored state, record the notifications due, send
    them and mark them sent. Returns an exit code: OK; PARTIAL when some notification is still undelivered (it is
    retried by the next run); USAGE for a configuration error; DATABASE when the store cannot be written. Never
    raises for a delivery failure."""
    try:
        settings = _config(config)
    except ConfigError as exc:
        _say(f"error: {exc}")
        return exitcodes.USAGE
    try:
        with _alerts_lock(str(db_path)) as locked:
            if not locked:
                _say(f"another provlens process is delivering alerts ({db_path}.alerts.lock); left to it")
                return exitcodes.OK
            with Store.open(str(db_path)) as store:
                result = store.record_alerts(alerts, now=now, targets=settings.targets,
                                             renotify_hours=settings.renotify_hours)
                pending = store.pending_deliveries()
            _test_pause("before_send")
            sent, failed = _deliver(str(db_path), settings, pending)
    except (StoreError, duckdb.Error) as exc:
        _say(f"error: the store cannot be written: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        return exitcodes.DATABASE
    recorded = ", ".join(f"{n} {kind}" for kind, n in result.recorded.items() if n) or "none"
    _say(f"{result.fired} fired, {result.active} still active, {result.resolved} resolved; notifications recorded: "
         f"{recorded}; sent {sent}, not delivered {failed}" + (f", given up {result.given_up}"
                                                                if result.given_up else ""))
    return exitcodes.PARTIAL if failed else exitcodes.OK


def send_test(config: dict, target_name: str) -> int:
    """``python -m ingest alerts --test TARGET``: one test message to one target, nothing stored."""
    try:
        settings = load_alerts_config(config, need_urls=False)
        target = settings.target(target_name)
        url = target.url()
        if not delivery.valid_url(url):
            raise ConfigError(f"alert target {target.name!r}: the value of {target.url_env} is not an Apprise URL")
    except ConfigError as exc:
        _say(f"error: {exc}")
        return exitcodes.USAGE
    now = datetime.now(timezone.utc)
    title = "provlens: test message"
    body = "\n".join([f"- **What:** a test message to the target {target.name!r}, sent at "
                      f"{now.strftime('%Y-%m-%d %H:%M UTC')}",
                      "- **Action:** none; alerts will reach this target like this message did",
                      f"- **Dashboard:** {settings.link('/alerts')}"])
    outcome = delivery.send(url, title, body, severity="info", attempts=settings.delivery_attempts,
                            wait_seconds=settings.retry_wait_seconds)
    if outcome.ok:
        _say(f"test message sent to {target.name!r}")
        return exitcodes.OK
    _say(f"test message to {target.name!r} not delivered after {outcome.attempts} tries: {outcome.error}")
    return exitcodes.UNREACHABLE


def wanted_after_ingest(config: dict | None) -> bool:
    """Whether ingest runs evaluate the alerts: when provlens.toml has an ``[alerts]`` table (even an empty one).
    Without it, alerts are evaluated only on demand (``python -m ingest alerts``) and by ``ingest demo``."""
    return isinstance((config or {}).get("alerts"), dict)


def evaluate_after_ingest(db_path, config: dict) -> None:
    """After an ingest run (each source command, each round of ``ingest run``): evaluate the alert rules, record and
    send what changed, when provlens.toml has an ``[alerts]`` table. Never raises; never changes the exit code."""
    if wanted_after_ingest(config):
        after_ingest(db_path, config)


def after_ingest(db_path, config: dict, *, now: datetime | None = None) -> None:
    """Evaluate the rules and process the alerts after an ingest run. Never raises; one line on error. The ingest
    run's exit code never depends on it."""
    try:
        from ingest.alerts.rules import evaluate
        from ingest.alerts.settings import load_alert_settings
        from ingest.dbfile import read_connection

        when = now or datetime.now(timezone.utc)
        rule_settings = load_alert_settings(config)
        with read_connection(str(db_path)) as con:
            alerts = evaluate(con, rule_settings, when)
        process(db_path, alerts, now=when, config=config)
    except Exception as exc:  # an alert problem never fails the ingest run
        _say(f"error: alerts not evaluated ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
