"""Alert state in the store ("state, not spam"): the write side of the ``alerts`` and ``alert_deliveries`` tables.

Only :class:`ingest.store.Store` calls these (its ``record_alerts``, ``pending_deliveries``, ``finish_delivery``);
each runs on the store's connection. The rules:

- an alert (rule, key) not active before opens an episode and records a ``fired`` notification for every target
  that takes it;
- while it stays active, a ``reminder`` is recorded once ``renotify_hours`` have passed since the last fired or
  reminder notification was recorded; a target that takes it and has not heard of it yet (added to the config
  later, or the alert's severity changed into its range) gets its ``fired`` one;
- an episode no longer active is resolved, and a ``resolved`` notification is recorded for each target that was
  told of it;
- the same evaluation again records nothing: decisions depend on what is recorded, not on what was sent.

Notifications are recorded ``pending`` in the evaluation's transaction, sent after it commits, and marked ``sent``
one by one (:func:`finish`): a crash in between leaves them pending and the next run sends them (at least once).
A pending notification still unsent ``renotify_hours`` after it was recorded is given up (``failed``): the
alert's next reminder takes its place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from ingest.alerts.model import Alert
from ingest.alerts.targets import Target


@dataclass
class Reconciled:
    """What one evaluation changed: episodes opened, still active, resolved, and notifications recorded."""

    fired: int = 0
    active: int = 0
    resolved: int = 0
    recorded: dict[str, int] = field(default_factory=lambda: {"fired": 0, "reminder": 0, "resolved": 0})
    given_up: int = 0


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _next_id(con: duckdb.DuckDBPyConnection, table: str, column: str) -> int:
    return con.execute(f"SELECT coalesce(max({column}), 0) + 1 FROM {table}").fetchone()[0]


def _record(con: duckdb.DuckDBPyConnection, episode_id: int, kind: str, targets: list[str], now: datetime,
            result: Reconciled) -> None:
    for target in targets:
        con.execute("INSERT INTO alert_deliveries (delivery_id, episode_id, kind, target, recorded_at, status, "
                    "attempts) VALUES (?, ?, ?, ?, ?, 'pending', 0)",
                    [_next_id(con, "alert_deliveries", "delivery_id"), episode_id, kind, target, now])
        result.recorded[kind] += 1


def reconcile(con: duckdb.DuckDBPyConnection, alerts: list[Alert], *, now: datetime, targets: tuple[Target, ...],
              renotify_hours: float) -> Reconciled:
    """Bring the stored episodes in line with the active ``alerts`` of an evaluation at ``now`` and record the
    notifications due. Runs inside the caller's transaction."""
    result = Reconciled()
    renotify = timedelta(hours=renotify_hours)
    current: dict[tuple[str, str], Alert] = {}
    for alert in alerts:
        current.setdefault((alert.rule, alert.key), alert)
    open_episodes = {(r["rule"], r["key"]): r for r in _rows(
        con, "SELECT episode_id, rule, key, last_notified_at FROM alerts WHERE resolved_at IS NULL")}
    told = {}
    for row in _rows(con, "SELECT d.episode_id, list(DISTINCT d.target) AS targets FROM alert_deliveries d "
                          "JOIN alerts a USING (episode_id) WHERE a.resolved_at IS NULL "
                          "AND d.kind IN ('fired', 'reminder') GROUP BY d.episode_id"):
        told[row["episode_id"]] = set(row["targets"])

    for (rule, key), alert in current.items():
        takers = [t.name for t in targets if t.accepts(alert.rule, alert.severity)]
        values = [alert.severity, alert.app, alert.job, alert.message, alert.action, alert.identities, alert.url,
                  alert.first_seen, alert.last_seen]
        episode = open_episodes.get((rule, key))
        if episode is None:
            episode_id = _next_id(con, "alerts", "episode_id")
            con.execute("INSERT INTO alerts (episode_id, rule, key, severity, app, job, message, action, identities, "
                        "url, first_seen, last_seen, fired_at, last_evaluated_at, last_notified_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [episode_id, rule, key, *values, now, now, now])
            result.fired += 1
            _record(con, episode_id, "fired", takers, now, result)
            continue
        episode_id = episode["episode_id"]
        result.active += 1
        con.execute("UPDATE alerts SET severity = ?, app = ?, job = ?, message = ?, action = ?, identities = ?, "
                    "url = ?, first_seen = ?, last_seen = ?, last_evaluated_at = greatest(last_evaluated_at, ?) "
                    "WHERE episode_id = ?", [*values, now, episode_id])
        new_takers = [t for t in takers if t not in told.get(episode_id, set())]
        _record(con, episode_id, "fired", new_takers, now, result)
        last = episode["last_notified_at"]
        if last is None or now - last >= renotify:
            _record(con, episode_id, "reminder", [t for t in takers if t not in new_takers], now, result)
            con.execute("UPDATE alerts SET last_notified_at = ? WHERE episode_id = ?", [now, episode_id])

    for (rule, key), episode in open_episodes.items():
        if (rule, key) in current:
            continue
        episode_id = episode["episode_id"]
        con.execute("UPDATE alerts SET resolved_at = ? WHERE episode_id = ?", [now, episode_id])
        result.resolved += 1
        _record(con, episode_id, "resolved", sorted(told.get(episode_id, set())), now, result)

    result.given_up = len(con.execute(
        "UPDATE alert_deliveries SET status = 'failed', "
        "last_error = coalesce(last_error || '; ', '') || 'given up: not delivered within the re-notify interval' "
        "WHERE status = 'pending' AND recorded_at <= ? RETURNING delivery_id", [now - renotify]).fetchall())
    return result


PENDING_SQL = """
    SELECT d.delivery_id, d.kind, d.target, d.recorded_at, d.attempts, a.episode_id, a.rule, a.key, a.severity,
           a.app, a.job, a.message, a.action, a.identities, a.url, a.first_seen, a.last_seen, a.fired_at,
           a.resolved_at
    FROM alert_deliveries d JOIN alerts a USING (episode_id)
    WHERE d.status = 'pending' ORDER BY d.delivery_id"""


def pending(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The notifications recorded and not yet sent (nor given up), oldest first, each with its episode."""
    return _rows(con, PENDING_SQL)


def finish(con: duckdb.DuckDBPyConnection, delivery_id: int, *, ok: bool, attempts: int, error: str | None,
           at: datetime) -> None:
    """Record a delivery's tries: sent (``ok``; an earlier try's error stays as ``last_error``), or still pending
    with this try's (redacted) error."""
    con.execute("UPDATE alert_deliveries SET attempts = attempts + ?, last_attempt_at = ?, "
                "status = CASE WHEN ? THEN 'sent' ELSE status END, sent_at = CASE WHEN ? THEN ? ELSE sent_at END, "
                "last_error = CASE WHEN ? THEN last_error ELSE ? END WHERE delivery_id = ? AND status = 'pending'",
                [attempts, at, ok, ok, at, ok, error, delivery_id])


def give_up(con: duckdb.DuckDBPyConnection, delivery_id: int, reason: str, at: datetime) -> None:
    """A delivery that can never be sent (its target is no longer configured)."""
    con.execute("UPDATE alert_deliveries SET status = 'failed', last_error = ?, last_attempt_at = ? "
                "WHERE delivery_id = ? AND status = 'pending'", [reason, at, delivery_id])
