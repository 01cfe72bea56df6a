"""The Alerts page's questions (issue 24): the alerts active now, every episode fired and resolved with how it was
notified, and the notifications themselves (the outbox). They read the ``alerts`` and ``alert_deliveries`` source
tables (written only by the store, ingest/alerts/state.py); the sidebar's filters do not apply (alert state is the
whole tenant's).

Each page query has a plain reference spelling in :data:`REFERENCES` (correlated subqueries instead of the joined
aggregate); ``tests/test_alert_history_queries.py`` holds the two equal.
"""

from __future__ import annotations

from queries.filters import time_filter
from queries.named import q

# critical first; then the newest
_SEVERITY_RANK = "CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END"

_NOTIFIED = """
    SELECT episode_id, count(*) FILTER (WHERE status = 'sent') AS sent,
           count(*) FILTER (WHERE status = 'pending') AS pending,
           count(*) FILTER (WHERE status = 'failed') AS failed,
           max(sent_at) AS last_sent_at,
           string_agg(DISTINCT target, ', ' ORDER BY target) FILTER (WHERE status = 'sent') AS told
    FROM alert_deliveries GROUP BY episode_id"""

QUERY_LIST = [
    q("alerts_active", "The alerts active now (open episodes), most severe first, with their notifications", f"""
        SELECT a.severity, a.rule, a.app, a.job, a.message, a.action, a.identities, a.url, a.first_seen,
               a.last_seen, a.fired_at, a.last_evaluated_at, a.last_notified_at,
               coalesce(n.sent, 0)::BIGINT AS sent, coalesce(n.pending, 0)::BIGINT AS pending,
               coalesce(n.failed, 0)::BIGINT AS failed, n.told, a.key, a.episode_id
        FROM alerts a LEFT JOIN ({_NOTIFIED}) n USING (episode_id)
        WHERE a.resolved_at IS NULL
        ORDER BY {_SEVERITY_RANK}, a.fired_at DESC, a.episode_id DESC"""),
    q("alert_history", "Every alert episode (fired, resolved or still active), newest first, with its notifications",
      f"""
        SELECT a.fired_at, a.resolved_at, CASE WHEN a.resolved_at IS NULL THEN 'active' ELSE 'resolved' END AS state,
               a.severity, a.rule, a.app, a.job, a.message, a.url, a.identities, a.first_seen, a.last_seen,
               a.last_notified_at, coalesce(n.sent, 0)::BIGINT AS sent, coalesce(n.pending, 0)::BIGINT AS pending,
               coalesce(n.failed, 0)::BIGINT AS failed, n.last_sent_at, n.told, a.key, a.episode_id
        FROM alerts a LEFT JOIN ({_NOTIFIED}) n USING (episode_id)
        ORDER BY a.fired_at DESC, a.episode_id DESC
        LIMIT coalesce($limit::BIGINT, 1000)"""),
    q("alert_deliveries", "The alert notifications, newest first: kind, target, status, tries, last error (redacted)",
      """
        SELECT d.recorded_at, d.kind, d.target, d.status, a.rule, a.app, a.url, d.sent_at, d.attempts,
               d.last_attempt_at, d.last_error, a.severity, d.episode_id, d.delivery_id
        FROM alert_deliveries d JOIN alerts a USING (episode_id)
        ORDER BY d.recorded_at DESC, d.delivery_id DESC
        LIMIT coalesce($limit::BIGINT, 1000)"""),
    q("alerts_resolved", "The alert episodes resolved in the period (the sidebar's time range), newest first", f"""
        SELECT a.resolved_at, a.fired_at, a.severity, a.rule, a.app, a.job, a.message, a.url, a.key, a.episode_id
        FROM alerts a WHERE a.resolved_at IS NOT NULL AND {time_filter('a.resolved_at')}
        ORDER BY a.resolved_at DESC, a.episode_id DESC"""),
    q("alert_counts", "How many alerts are active, by severity, and notifications not delivered yet", """
        SELECT count(*) FILTER (WHERE resolved_at IS NULL) AS active,
               count(*) FILTER (WHERE resolved_at IS NULL AND severity = 'critical') AS critical,
               count(*) FILTER (WHERE resolved_at IS NULL AND severity = 'warning') AS warning,
               count(*) AS episodes,
               (SELECT count(*) FROM alert_deliveries WHERE status = 'pending') AS undelivered
        FROM alerts"""),
]

# The plain spellings: per episode, each count a correlated subquery over alert_deliveries.
_PER_EPISODE = """
    (SELECT count(*) FROM alert_deliveries d WHERE d.episode_id = a.episode_id AND d.status = 'sent') AS sent,
    (SELECT count(*) FROM alert_deliveries d WHERE d.episode_id = a.episode_id AND d.status = 'pending') AS pending,
    (SELECT count(*) FROM alert_deliveries d WHERE d.episode_id = a.episode_id AND d.status = 'failed') AS failed"""
_TOLD = """(SELECT string_agg(target, ', ' ORDER BY target) FROM (SELECT DISTINCT target FROM alert_deliveries d
              WHERE d.episode_id = a.episode_id AND d.status = 'sent')) AS told"""

REFERENCES = {
    "alerts_active": f"""
        SELECT a.severity, a.rule, a.app, a.job, a.message, a.action, a.identities, a.url, a.first_seen,
               a.last_seen, a.fired_at, a.last_evaluated_at, a.last_notified_at, {_PER_EPISODE}, {_TOLD},
               a.key, a.episode_id
        FROM alerts a WHERE a.resolved_at IS NULL""",
    "alert_history": f"""
        SELECT a.fired_at, a.resolved_at, CASE WHEN a.resolved_at IS NULL THEN 'active' ELSE 'resolved' END AS state,
               a.severity, a.rule, a.app, a.job, a.message, a.url, a.identities, a.first_seen, a.last_seen,
               a.last_notified_at, {_PER_EPISODE},
               (SELECT max(sent_at) FROM alert_deliveries d WHERE d.episode_id = a.episode_id) AS last_sent_at,
               {_TOLD}, a.key, a.episode_id
        FROM alerts a""",
    "alert_deliveries": """
        SELECT d.recorded_at, d.kind, d.target, d.status,
               (SELECT rule FROM alerts a WHERE a.episode_id = d.episode_id) AS rule,
               (SELECT app FROM alerts a WHERE a.episode_id = d.episode_id) AS app,
               (SELECT url FROM alerts a WHERE a.episode_id = d.episode_id) AS url,
               d.sent_at, d.attempts, d.last_attempt_at, d.last_error,
               (SELECT severity FROM alerts a WHERE a.episode_id = d.episode_id) AS severity,
               d.episode_id, d.delivery_id
        FROM alert_deliveries d""",
    # all time (the tests run it with no time range; a window is checked against this filtered by hand)
    "alerts_resolved": """
        SELECT a.resolved_at, a.fired_at, a.severity, a.rule, a.app, a.job, a.message, a.url, a.key, a.episode_id
        FROM alerts a WHERE a.resolved_at IS NOT NULL""",
    "alert_counts": """
        SELECT (SELECT count(*) FROM alerts WHERE resolved_at IS NULL) AS active,
               (SELECT count(*) FROM alerts WHERE resolved_at IS NULL AND severity = 'critical') AS critical,
               (SELECT count(*) FROM alerts WHERE resolved_at IS NULL AND severity = 'warning') AS warning,
               (SELECT count(*) FROM alerts) AS episodes,
               (SELECT count(*) FROM alert_deliveries WHERE status = 'pending') AS undelivered""",
}
