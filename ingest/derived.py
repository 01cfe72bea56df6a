"""Derived state: summaries the single writer keeps next to the events so page views need no window
functions over every event.

- ``derived_failures``: one row per failed event with its run of failures (``consecutive_cycles``),
  the first success of the same identity strictly after it (``next_success_at``) and our advice
  (``recommended_action``) - the failures dataset, the recurring-failures and top-errors views and the
  violations' "resolved" state read it instead of recomputing the windows over all outcomes.
- ``derived_cycles``: per (job_id, cycle_id, service_principal_id) the time window and the counts by
  action and status - the cycles dataset re-aggregates this small table.
- ``derived_work_domains``: the email domains of successful events (UPN domains, create emails) - the
  violations' default "allowed domains".

The store refreshes them in the same transaction as the rows (:func:`refresh`), only for the keys a
batch touched (identities for failures, cycles for cycles); migration 3 backfills them for existing
rows with the same SQL. Read queries live in :mod:`queries.datasets`.
"""

from __future__ import annotations

import duckdb

# An identity, as the failure runs partition it.
IDENTITY_KEY = ("service_principal_id", "job_id", "source_id")
CYCLE_KEY = ("job_id", "cycle_id")

# Our own advice where Microsoft's recommendedAction is empty (first match wins). Over alias ``e``.
RECOMMENDED_ACTION_SQL = """coalesce(nullif(e.recommended_action, ''), CASE
    WHEN e.http_status = 409 OR e.scim_type = 'uniqueness' OR e.error_code LIKE '%EntryConflict'
         OR e.error_code IN ('Conflict', 'DuplicateTargetEntries', 'DuplicateSourceEntries')
        THEN 'Fix the duplicate userName: another account in the app already uses this userName '
             '(case-insensitively). Rename or remove that account, or change the source UPN or the '
             'attribute mapping; Entra retries in a later cycle.'
    WHEN e.http_status = 400 AND (e.scim_detail ILIKE '%email%' OR e.error_reason ILIKE '%email%')
        THEN 'The app rejected the email address: give the user a work email in an allowed domain '
             '(mail attribute in Entra ID or the mapping); Entra retries in a later cycle.'
    WHEN e.http_status = 400
        THEN 'The app rejected a value: check the value named in the SCIM detail and the attribute mappings.'
    WHEN e.http_status = 401 OR e.error_code LIKE '%CredentialValidationFailure'
         OR e.error_code = 'Unauthorized'
        THEN 'Renew the SCIM token: enterprise app > Provisioning > Admin credentials, paste a new '
             'secret token, Test Connection; the job leaves quarantine at its next attempt.'
    WHEN e.http_status = 403 OR e.error_code = 'InsufficientRights'
        THEN 'The app refused the request: check the token''s permissions in the app.'
    WHEN e.http_status = 429 OR e.error_code = 'TooManyRequests'
        THEN 'The app throttled Entra: retried automatically in a later cycle; act only if it persists.'
    WHEN e.http_status >= 500 OR e.error_code IN ('Timeout', 'InternalServerError', 'InternalError',
                                                 'WebExceptionProtocolError')
        THEN 'Temporary error in the app: retried automatically in a later cycle; contact the app vendor '
             'if it persists.'
END)"""

# Columns of derived_failures copied from events (the failures dataset's and the violations' inputs).
FAILURE_EVENT_COLUMNS = (
    "id", "activity_time", "tenant_id", "job_id", "cycle_id", "change_id", "service_principal_id",
    "service_principal_name", "action", "status", "error_code", "error_category", "error_reason",
    "source_id", "source_name", "source_upn", "target_id", "user_name", "duration_ms",
    "http_status", "scim_type", "scim_detail", "next_retry_at", "email_domain",
)

CREATE_TABLES = [
    """CREATE TABLE derived_failures (
        id VARCHAR, activity_time TIMESTAMPTZ, tenant_id VARCHAR, job_id VARCHAR, cycle_id VARCHAR,
        change_id VARCHAR, service_principal_id VARCHAR, service_principal_name VARCHAR, action VARCHAR,
        status VARCHAR, error_code VARCHAR, error_category VARCHAR, error_reason VARCHAR, source_id VARCHAR,
        source_name VARCHAR, source_upn VARCHAR, target_id VARCHAR, user_name VARCHAR, duration_ms BIGINT,
        http_status INTEGER, scim_type VARCHAR, scim_detail VARCHAR, next_retry_at TIMESTAMPTZ,
        email_domain VARCHAR, consecutive_cycles BIGINT, next_success_at TIMESTAMPTZ, recommended_action VARCHAR
    )""",
    """CREATE TABLE derived_cycles (
        job_id VARCHAR, cycle_id VARCHAR, service_principal_id VARCHAR, started_at TIMESTAMPTZ,
        ended_at TIMESTAMPTZ, events BIGINT, created BIGINT, updated BIGINT, disabled BIGINT, deleted BIGINT,
        other BIGINT, success BIGINT, failure BIGINT, skipped BIGINT, warning BIGINT, full_import BOOLEAN
    )""",
    "CREATE TABLE derived_work_domains (domain VARCHAR)",
]

# {scope} restricts the events read: empty for everything, or a SEMI JOIN on a temp table of keys.
# A failure's run: failures of one identity in a row, ordered by time (then id), reset by a success of
# that identity; skipped/warning events neither count nor reset. consecutive_cycles counts the distinct
# cycles of the run up to and including the failure. next_success_at: the identity's first success
# strictly after the failure (NULL source_id or service principal never resolves).
_FAILURES_SELECT = f"""
WITH outcomes AS (
    SELECT id, activity_time, cycle_id, status, service_principal_id, job_id, source_id,
           count(*) FILTER (WHERE status = 'success') OVER (
               PARTITION BY service_principal_id, job_id, source_id ORDER BY activity_time, id
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS run_no,
           min(activity_time) FILTER (WHERE status = 'success') OVER (
               PARTITION BY service_principal_id, job_id, source_id ORDER BY activity_time
               RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING EXCLUDE GROUP) AS next_success_at
    FROM events {{scope}}
    WHERE status IN ('success', 'failure')
),
runs AS (
    SELECT id, next_success_at, count(DISTINCT cycle_id) OVER (
               PARTITION BY service_principal_id, job_id, source_id, run_no ORDER BY activity_time, id
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS consecutive_cycles
    FROM outcomes WHERE status = 'failure'
)
SELECT {', '.join('e.' + c for c in FAILURE_EVENT_COLUMNS)}, r.consecutive_cycles,
       CASE WHEN e.source_id IS NOT NULL AND e.service_principal_id IS NOT NULL THEN r.next_success_at END,
       {RECOMMENDED_ACTION_SQL}
FROM events e JOIN runs r USING (id)
WHERE e.status = 'failure'
"""

_CYCLES_SELECT = """
SELECT job_id, cycle_id, service_principal_id,
       min(activity_time), max(activity_time), count(*),
       count(*) FILTER (WHERE action = 'create'),
       count(*) FILTER (WHERE action = 'update'),
       count(*) FILTER (WHERE action = 'disable'),
       count(*) FILTER (WHERE action = 'delete'),
       count(*) FILTER (WHERE action NOT IN ('create', 'update', 'disable', 'delete') OR action IS NULL),
       count(*) FILTER (WHERE status = 'success'),
       count(*) FILTER (WHERE status = 'failure'),
       count(*) FILTER (WHERE status = 'skipped'),
       count(*) FILTER (WHERE status = 'warning'),
       bool_or(import_kind = 'full')
FROM events {scope}
GROUP BY job_id, cycle_id, service_principal_id
"""

_DOMAINS_SELECT = """
SELECT DISTINCT domain FROM (
    SELECT lower(split_part(source_upn, '@', -1)) AS domain FROM events {scope}
    WHERE status = 'success' AND source_upn LIKE '%@%'
    UNION ALL
    SELECT email_domain FROM events {scope}
    WHERE status = 'success' AND action = 'create' AND email_domain IS NOT NULL)
"""

# Migration 3: the tables, filled from the events already stored.
BACKFILL = [
    *CREATE_TABLES,
    "INSERT INTO derived_failures " + _FAILURES_SELECT.format(scope=""),
    "INSERT INTO derived_cycles " + _CYCLES_SELECT.format(scope=""),
    "INSERT INTO derived_work_domains " + _DOMAINS_SELECT.format(scope=""),
]


def _match(alias: str, other: str, key: tuple[str, ...]) -> str:
    return " AND ".join(f"{alias}.{c} IS NOT DISTINCT FROM {other}.{c}" for c in key)


def note_old_keys(con: duckdb.DuckDBPyConnection, changed: str) -> None:
    """Before ``events`` rows are overwritten: remember the keys they had (an update may move an event
    to another identity or cycle, and both the old and the new key must be refreshed)."""
    _ensure_touched(con)
    con.execute(f"INSERT INTO derived_touched SELECT {', '.join(sorted(set(IDENTITY_KEY + CYCLE_KEY)))}, "
                f"status = 'success' FROM events e SEMI JOIN {changed} c ON e.id = c.id")
    con.execute("CREATE OR REPLACE TEMP TABLE derived_updated AS SELECT true AS yes")


def _ensure_touched(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TEMP TABLE IF NOT EXISTS derived_touched (cycle_id VARCHAR, job_id VARCHAR, "
                "service_principal_id VARCHAR, source_id VARCHAR, was_success BOOLEAN)")


def refresh(con: duckdb.DuckDBPyConnection, keys: str) -> None:
    """Bring the derived tables up to date for the events whose ids are in temp table ``keys`` (just
    inserted or updated), plus the old keys :func:`note_old_keys` saw. Call inside the load's transaction."""
    _ensure_touched(con)
    con.execute(f"INSERT INTO derived_touched SELECT {', '.join(sorted(set(IDENTITY_KEY + CYCLE_KEY)))}, "
                f"status = 'success' FROM events e SEMI JOIN {keys} k ON e.id = k.id")
    updated = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'derived_updated' "
                          "AND temporary").fetchone()[0] > 0
    ident = ", ".join(IDENTITY_KEY)
    cyc = ", ".join(CYCLE_KEY)
    con.execute(f"CREATE OR REPLACE TEMP TABLE derived_identities AS SELECT DISTINCT {ident} FROM derived_touched")
    con.execute(f"CREATE OR REPLACE TEMP TABLE derived_cycle_keys AS SELECT DISTINCT {cyc} FROM derived_touched")

    con.execute(f"DELETE FROM derived_failures f USING derived_identities k WHERE {_match('f', 'k', IDENTITY_KEY)}")
    con.execute("INSERT INTO derived_failures " + _FAILURES_SELECT.format(
        scope=f"SEMI JOIN derived_identities k ON {_match('events', 'k', IDENTITY_KEY)}"))

    con.execute(f"DELETE FROM derived_cycles c USING derived_cycle_keys k WHERE {_match('c', 'k', CYCLE_KEY)}")
    con.execute("INSERT INTO derived_cycles " + _CYCLES_SELECT.format(
        scope=f"SEMI JOIN derived_cycle_keys k ON {_match('events', 'k', CYCLE_KEY)}"))

    if updated:  # an event may have stopped being a success: recount the domains from all events
        con.execute("DELETE FROM derived_work_domains")
        con.execute("INSERT INTO derived_work_domains " + _DOMAINS_SELECT.format(scope=""))
    elif con.execute("SELECT count(*) FROM derived_touched WHERE was_success").fetchone()[0]:
        scope = f"SEMI JOIN {keys} k ON events.id = k.id"
        con.execute("INSERT INTO derived_work_domains SELECT domain FROM (" + _DOMAINS_SELECT.format(scope=scope)
                    + ") ANTI JOIN derived_work_domains d USING (domain)")
    for table in ("derived_touched", "derived_updated", "derived_identities", "derived_cycle_keys"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
