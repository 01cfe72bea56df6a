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

# Migration 3 created these (its backfill is done by migration 4, with the columns added there).
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

CYCLE_COLUMNS = ("job_id", "cycle_id", "service_principal_id", "started_at", "ended_at", "events", "created",
                 "updated", "disabled", "deleted", "other", "success", "failure", "skipped", "warning",
                 "full_import", "service_principal_name")
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
       bool_or(import_kind = 'full'), any_value(service_principal_name)
FROM events {scope}
GROUP BY job_id, cycle_id, service_principal_id
"""

# Events per UTC hour and the dimensions the pages count by. The hour is computed from the epoch
# (date_trunc on a TIMESTAMPTZ goes through ICU and is ~8x slower); same instant, TIMESTAMPTZ.
HOUR_SQL = "make_timestamptz(epoch_us({col}) // 3600000000 * 3600000000)"
HOUR_COLUMNS = ("hour", "service_principal_id", "job_id", "status", "action", "error_code", "skip_category",
                "skip_reason", "events", "first_time", "last_time")
_HOURS_SELECT = f"""
SELECT {HOUR_SQL.format(col='activity_time')} AS hour, service_principal_id, job_id, status, action, error_code,
       skip_category, skip_reason, count(*), min(activity_time), max(activity_time)
FROM events {{scope}}
GROUP BY ALL
"""

_DOMAINS_SELECT = """
SELECT DISTINCT domain FROM (
    SELECT lower(split_part(source_upn, '@', -1)) AS domain FROM events {scope}
    WHERE status = 'success' AND source_upn LIKE '%@%'
    UNION ALL
    SELECT email_domain FROM events {scope}
    WHERE status = 'success' AND action = 'create' AND email_domain IS NOT NULL)
"""

_FAILURE_COLUMNS = (*FAILURE_EVENT_COLUMNS, "consecutive_cycles", "next_success_at", "recommended_action")

# Per identity: its events, and its failures' state over all time (the latest failure's details, the
# longest run, when the latest run began). Built from derived_failures, so refresh that first.
IDENTITY_COLUMNS = ("service_principal_id", "job_id", "source_id", "events", "failures", "max_consecutive_cycles",
                    "failing_since", "last_failure", "source_upn", "user_name", "error_code", "recommended_action")
_IDENTITIES_SELECT = """
WITH ev AS (
    SELECT service_principal_id, job_id, source_id, count(*) AS events
    FROM events {scope_events} GROUP BY ALL),
f AS (
    SELECT service_principal_id, job_id, source_id, count(*) AS failures,
           max(consecutive_cycles) AS max_consecutive_cycles,
           max(activity_time) FILTER (WHERE consecutive_cycles = 1) AS failing_since,
           max(activity_time) AS last_failure, arg_max(source_upn, activity_time) AS source_upn,
           arg_max(user_name, activity_time) AS user_name, arg_max(error_code, activity_time) AS error_code,
           arg_max(recommended_action, activity_time) AS recommended_action
    FROM derived_failures {scope_failures} GROUP BY ALL)
SELECT ev.service_principal_id, ev.job_id, ev.source_id, ev.events, coalesce(f.failures, 0),
       f.max_consecutive_cycles, f.failing_since, f.last_failure, f.source_upn, f.user_name, f.error_code,
       f.recommended_action
FROM ev LEFT JOIN f ON ev.service_principal_id IS NOT DISTINCT FROM f.service_principal_id
     AND ev.job_id IS NOT DISTINCT FROM f.job_id AND ev.source_id IS NOT DISTINCT FROM f.source_id
"""


def _insert(table: str, columns: tuple[str, ...], select: str, scope: str) -> str:
    """INSERT the select's rows; ``{t}`` in ``scope`` names the table it restricts (events / derived_failures)."""
    if "{scope_events}" in select:
        sql = select.format(scope_events=scope.replace("{t}", "events"),
                            scope_failures=scope.replace("{t}", "derived_failures"))
    else:
        sql = select.format(scope=scope.replace("{t}", "events"))
    return f"INSERT INTO {table} ({', '.join(columns)}) " + sql


def full_select(table: str) -> str:
    """The SELECT that computes a whole derived table from all events (for checks and backfills)."""
    select = {"derived_failures": _FAILURES_SELECT, "derived_cycles": _CYCLES_SELECT,
              "derived_event_hours": _HOURS_SELECT, "derived_work_domains": _DOMAINS_SELECT,
              "derived_cycle_heads": _CYCLE_HEADS_SELECT,
              "derived_skip_identities": _SKIP_IDENTITIES_SELECT, "derived_skip_reasons": _SKIP_REASONS_SELECT,
              "derived_error_codes": _ERROR_CODES_SELECT,
              "derived_recent_failures": _RECENT_FAILURES_SELECT,
              "derived_violation_groups": _VIOLATION_GROUPS_SELECT,
              "derived_identity_names": _IDENTITY_NAMES_SELECT,
              "derived_identity_events": _IDENTITY_EVENTS_SELECT,
              "derived_skip_top": skip_top_select(
                  f"({_SKIP_IDENTITIES_SELECT}) AS t({', '.join(SKIP_IDENTITY_COLUMNS)})")}[table]
    return select.format(scope="", rows=RECENT_FAILURE_ROWS)


# Migration 19: the per-identity failure state and the all-time recurring failures and per-source counts built on
# it are gone: they took the longest run and the latest run's start over all of an identity's runs (issue 21), and
# the pages now read the open run from derived_failures (queries/datasets.py RECURRING_FAILURES_SQL).
MIGRATION_19 = [f"DROP TABLE IF EXISTS {t}" for t in
                ("derived_recurring_failures", "derived_source_ids", "derived_identities")]


# Migration 4: app names on cycle summaries, hourly counts; then everything (re)computed from the events.
MIGRATION_4 = [
    "ALTER TABLE derived_cycles ADD COLUMN service_principal_name VARCHAR",
    """CREATE TABLE derived_event_hours (
        hour TIMESTAMPTZ, service_principal_id VARCHAR, job_id VARCHAR, status VARCHAR, action VARCHAR,
        error_code VARCHAR, skip_category VARCHAR, skip_reason VARCHAR, events BIGINT,
        first_time TIMESTAMPTZ, last_time TIMESTAMPTZ
    )""",
    "DELETE FROM derived_failures",
    "DELETE FROM derived_cycles",
    "DELETE FROM derived_work_domains",
    _insert("derived_failures", _FAILURE_COLUMNS, _FAILURES_SELECT, ""),
    _insert("derived_cycles", CYCLE_COLUMNS, _CYCLES_SELECT, ""),
    _insert("derived_event_hours", HOUR_COLUMNS, _HOURS_SELECT, ""),
    "INSERT INTO derived_work_domains " + _DOMAINS_SELECT.format(scope=""),
]

# Migration 5: per-identity state (after migration 4 filled derived_failures).
MIGRATION_5 = [
    """CREATE TABLE derived_identities (
        service_principal_id VARCHAR, job_id VARCHAR, source_id VARCHAR, events BIGINT, failures BIGINT,
        max_consecutive_cycles BIGINT, failing_since TIMESTAMPTZ, last_failure TIMESTAMPTZ, source_upn VARCHAR,
        user_name VARCHAR, error_code VARCHAR, recommended_action VARCHAR
    )""",
    _insert("derived_identities", IDENTITY_COLUMNS, _IDENTITIES_SELECT, ""),
]


# ---- Migration 6: page state for the all-time view of the heaviest page tables (issue 7, B4) ----
# Each is exactly what its page query returns over all events (no filters), per key a load can touch,
# so a page reads a few thousand rows instead of aggregating every event; with any filter set the
# pages fall back to the events (queries/pages.py).
#
# derived_cycle_heads: the first CYCLE_HEAD_ROWS events of each cycle (by time, then id) with the
# columns the cycle page lists (cycle_events_first reads it when $limit <= CYCLE_HEAD_ROWS).
CYCLE_HEAD_ROWS = 1000
CYCLE_HEAD_COLUMNS = ("cycle_id", "activity_time", "action", "status", "source_upn", "user_name", "error_code",
                      "scim_type", "skip_category", "target_id", "source_id", "id")
# Only cycles with more events than that need ranking: the others are copied whole (a cheaper load).
_CYCLE_HEADS_SELECT = f"""
WITH sizes AS (SELECT cycle_id, sum(events) > {CYCLE_HEAD_ROWS} AS big FROM derived_cycles
               WHERE cycle_id IS NOT NULL GROUP BY cycle_id)
SELECT {', '.join(CYCLE_HEAD_COLUMNS)} FROM events {{scope}}
WHERE cycle_id IN (SELECT cycle_id FROM sizes WHERE NOT big)
UNION ALL
SELECT {', '.join(CYCLE_HEAD_COLUMNS)} FROM events {{scope}}
WHERE cycle_id IN (SELECT cycle_id FROM sizes WHERE big)
QUALIFY row_number() OVER (PARTITION BY cycle_id ORDER BY activity_time, id) <= {CYCLE_HEAD_ROWS}
"""

# derived_skip_identities: the skip_identities query over all events (per app, identity, category).
SKIP_IDENTITY_COLUMNS = ("source_id", "service_principal_id", "service_principal_name", "source_upn",
                         "skip_category", "skip_reason", "first_seen", "last_seen", "cycles", "skips")
_SKIP_IDENTITIES_SELECT = """
SELECT source_id, service_principal_id, any_value(service_principal_name),
       arg_max(source_upn, activity_time), coalesce(skip_category, 'other'),
       arg_max(skip_reason, activity_time), min(activity_time), max(activity_time),
       count(DISTINCT cycle_id), count(*)
FROM events {scope}
WHERE status = 'skipped'
GROUP BY source_id, service_principal_id, coalesce(skip_category, 'other')
"""

# derived_skip_top: per skip category, the SKIP_TOP_ROWS identities of derived_skip_identities skipped in the
# most cycles (then latest, then by id, as the page orders them), numbered by ``rank``, with the category's
# identity count; the skipped page's tables (skip_identities_top reads it when $limit <= SKIP_TOP_ROWS).
# Recomputed from derived_skip_identities by every refresh (66k rows at 5M events: a top-N aggregate).
SKIP_TOP_ROWS = 500
SKIP_TOP_COLUMNS = (*SKIP_IDENTITY_COLUMNS, "category_identities", "rank")


def skip_top_select(src: str) -> str:
    """The derived_skip_top rows computed from ``src`` (rows with SKIP_IDENTITY_COLUMNS)."""
    return f"""
    SELECT * FROM (
        SELECT unnest(top, recursive := true), category_identities, generate_subscripts(top, 1) AS rank
        FROM (SELECT count(*) AS category_identities,
                     min_by(s, (-cycles, -epoch_us(last_seen), source_id, service_principal_id), {SKIP_TOP_ROWS}) AS top
              FROM (SELECT {', '.join(SKIP_IDENTITY_COLUMNS)} FROM {src}) AS s GROUP BY skip_category))
    ORDER BY skip_category, rank"""


# derived_skip_reasons: skipped events per (app, identity, category, reason); skips_by_category sums it.
SKIP_REASON_COLUMNS = ("service_principal_id", "source_id", "skip_category", "skip_reason", "skips")
_SKIP_REASONS_SELECT = """
SELECT service_principal_id, source_id, coalesce(skip_category, 'other'), coalesce(skip_reason, ''), count(*)
FROM events {scope}
WHERE status = 'skipped'
GROUP BY ALL
"""

# derived_error_codes: the top_errors page table over all failures, per error code (from derived_failures).
ERROR_CODE_COLUMNS = ("error_code", "failures", "identities", "first_seen", "last_seen", "http_status", "scim_type",
                      "scim_detail", "next_retry_at", "recommended_action")
# The per-error-code aggregate over a relation ``f`` of failures: the store's all-time state below and the
# top_errors page query for a period (queries/pages.py) share it, so the two cannot drift apart.
ERROR_CODE_AGGREGATE = """
per_code AS (
    SELECT error_code, count(*) AS failures,
           min(activity_time) AS first_seen, max(activity_time) AS last_seen,
           mode(http_status) AS http_status, mode(scim_type) AS scim_type,
           mode(scim_detail) AS scim_detail, max(next_retry_at) AS next_retry_at,
           mode(recommended_action) AS recommended_action
    FROM f GROUP BY error_code),
ids AS (
    SELECT error_code, count(*) AS identities
    FROM (SELECT DISTINCT error_code, source_id FROM f WHERE source_id IS NOT NULL)
    GROUP BY error_code)
SELECT p.error_code, p.failures, coalesce(i.identities, 0) AS identities, p.first_seen, p.last_seen,
       p.http_status, p.scim_type, p.scim_detail, p.next_retry_at, p.recommended_action
FROM per_code AS p LEFT JOIN ids AS i ON p.error_code IS NOT DISTINCT FROM i.error_code"""
_ERROR_CODES_SELECT = "WITH f AS (SELECT * FROM derived_failures {scope}),\n" + ERROR_CODE_AGGREGATE + "\n"

# derived_recurring_failures: the recurring_failures page table over all time (per identity and app),
# from derived_identities (refresh that first).
RECURRING_COLUMNS = ("source_id", "service_principal_id", "source_upn", "user_name", "consecutive_cycles",
                     "failing_since", "last_failure", "error_code", "recommended_action")
_RECURRING_SELECT = """
SELECT source_id, any_value(service_principal_id), arg_max(source_upn, last_failure),
       arg_max(user_name, last_failure), max(max_consecutive_cycles), max(failing_since), max(last_failure),
       arg_max(error_code, last_failure), arg_max(recommended_action, last_failure)
FROM derived_identities {scope}
WHERE failures > 0
GROUP BY source_id, service_principal_id
HAVING max(max_consecutive_cycles) >= 2
"""

# derived_recent_failures: the newest RECENT_FAILURE_ROWS rows of derived_failures (by time, then id), the
# failures page's "newest failures" table (failures_recent reads it when $limit <= RECENT_FAILURE_ROWS).
RECENT_FAILURE_ROWS = 1000
_RECENT_FAILURES_SELECT = """
SELECT * FROM derived_failures {scope} ORDER BY activity_time DESC, id DESC LIMIT {rows}
"""

# Violations: the kind of a failure (over alias ``e``; ``{allowed}`` is a relation of allowed email domains),
# shared with queries/datasets.py. derived_violation_groups: the violations dataset's per-identity groups
# over all failures with the store's work domains (the default allowed domains); recomputed entirely
# when those domains change, else per touched identity.
VIOLATION_KIND_SQL = """CASE
        WHEN e.http_status = 409 OR e.scim_type = 'uniqueness' OR e.error_code LIKE '%EntryConflict'
             OR e.error_code LIKE '%Conflict' OR e.error_code = 'DuplicateTargetEntries'
            THEN 'duplicate_user_name'
        WHEN e.http_status = 400 AND e.scim_type = 'invalidValue'
             AND ((e.email_domain IS NOT NULL AND e.email_domain NOT IN (SELECT domain FROM {allowed}))
                  OR e.scim_detail ILIKE '%email%')
            THEN 'non_work_email'
        WHEN e.http_status = 400 AND e.scim_type = 'invalidValue' THEN 'other_rejected_value'
    END"""
VIOLATION_GROUP_COLUMNS = ("kind", "service_principal_id", "job_id", "source_id", "user_name", "email_domain",
                           "first_seen", "last_seen", "occurrences", "next_success_at")
# Over a relation ``classified`` (failures with their ``kind``).
VIOLATION_GROUPS_AGGREGATE = """
    SELECT kind, service_principal_id, job_id, source_id,
           arg_max(user_name, activity_time) AS user_name,
           arg_max(email_domain, activity_time) FILTER (WHERE email_domain IS NOT NULL) AS email_domain,
           min(activity_time) AS first_seen, max(activity_time) AS last_seen, count(*) AS occurrences,
           arg_max(next_success_at, activity_time) AS next_success_at
    FROM classified WHERE kind IS NOT NULL
    GROUP BY kind, service_principal_id, job_id, source_id"""
_VIOLATION_GROUPS_SELECT = ("WITH classified AS (SELECT e.*, "
                            + VIOLATION_KIND_SQL.format(allowed="derived_work_domains")
                            + " AS kind FROM derived_failures e {scope})" + VIOLATION_GROUPS_AGGREGATE)

# derived_source_ids: per source_id (over all apps and jobs) whether it has failed - the overview's
# all-time identity counts (from derived_identities; refresh that first).
SOURCE_ID_COLUMNS = ("source_id", "failing")
_SOURCE_IDS_SELECT = """
SELECT source_id, bool_or(failures > 0) FROM derived_identities {scope}
WHERE source_id IS NOT NULL GROUP BY source_id
"""

MIGRATION_6 = [
    # Near-unique text stored uncompressed: a load writes these rows again for every cycle it touches,
    # and compressing them cost more than the rest of the page state together (1M events: ~0.8 s).
    """CREATE TABLE derived_cycle_heads (
        cycle_id VARCHAR, activity_time TIMESTAMPTZ, action VARCHAR, status VARCHAR,
        source_upn VARCHAR USING COMPRESSION uncompressed, user_name VARCHAR USING COMPRESSION uncompressed,
        error_code VARCHAR, scim_type VARCHAR, skip_category VARCHAR, target_id VARCHAR USING COMPRESSION uncompressed,
        source_id VARCHAR USING COMPRESSION uncompressed, id VARCHAR USING COMPRESSION uncompressed
    )""",
    """CREATE TABLE derived_skip_identities (
        source_id VARCHAR, service_principal_id VARCHAR, service_principal_name VARCHAR, source_upn VARCHAR,
        skip_category VARCHAR, skip_reason VARCHAR, first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ,
        cycles BIGINT, skips BIGINT
    )""",
    """CREATE TABLE derived_skip_reasons (
        service_principal_id VARCHAR, source_id VARCHAR, skip_category VARCHAR, skip_reason VARCHAR, skips BIGINT
    )""",
    """CREATE TABLE derived_error_codes (
        error_code VARCHAR, failures BIGINT, identities BIGINT, first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ,
        http_status INTEGER, scim_type VARCHAR, scim_detail VARCHAR, next_retry_at TIMESTAMPTZ,
        recommended_action VARCHAR
    )""",
    # Backfill; cycle heads sorted by cycle so a page's cycle_id filter skips most row groups.
    f"INSERT INTO derived_cycle_heads ({', '.join(CYCLE_HEAD_COLUMNS)}) SELECT * FROM ("
    + _CYCLE_HEADS_SELECT.format(scope="") + ") ORDER BY cycle_id, activity_time, id",
    f"INSERT INTO derived_skip_identities ({', '.join(SKIP_IDENTITY_COLUMNS)}) "
    + _SKIP_IDENTITIES_SELECT.format(scope=""),
    f"INSERT INTO derived_skip_reasons ({', '.join(SKIP_REASON_COLUMNS)}) " + _SKIP_REASONS_SELECT.format(scope=""),
    f"INSERT INTO derived_error_codes ({', '.join(ERROR_CODE_COLUMNS)}) " + _ERROR_CODES_SELECT.format(scope=""),
    """CREATE TABLE derived_recurring_failures (
        source_id VARCHAR, service_principal_id VARCHAR, source_upn VARCHAR, user_name VARCHAR,
        consecutive_cycles BIGINT, failing_since TIMESTAMPTZ, last_failure TIMESTAMPTZ, error_code VARCHAR,
        recommended_action VARCHAR
    )""",
    f"INSERT INTO derived_recurring_failures ({', '.join(RECURRING_COLUMNS)}) " + _RECURRING_SELECT.format(scope=""),
    "CREATE TABLE derived_recent_failures AS " + _RECENT_FAILURES_SELECT.format(scope="", rows=RECENT_FAILURE_ROWS),
    "CREATE TABLE derived_violation_groups AS " + _VIOLATION_GROUPS_SELECT.format(scope=""),
    "CREATE TABLE derived_source_ids (source_id VARCHAR, failing BOOLEAN)",
    "INSERT INTO derived_source_ids " + _SOURCE_IDS_SELECT.format(scope=""),
]


def _match(alias: str, other: str, key: tuple[str, ...]) -> str:
    return " AND ".join(f"{alias}.{c} IS NOT DISTINCT FROM {other}.{c}" for c in key)


def note_old_keys(con: duckdb.DuckDBPyConnection, changed: str) -> None:
    """Before ``events`` rows are overwritten: remember the keys they had (an update may move an event
    to another identity or cycle, and both the old and the new key must be refreshed)."""
    _ensure_touched(con)
    con.execute(f"INSERT INTO derived_touched SELECT {_TOUCHED} FROM events e SEMI JOIN {changed} c ON e.id = c.id")
    con.execute("CREATE OR REPLACE TEMP TABLE derived_updated AS SELECT true AS yes")


def _ensure_touched(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TEMP TABLE IF NOT EXISTS derived_touched (cycle_id VARCHAR, job_id VARCHAR, "
                "service_principal_id VARCHAR, source_id VARCHAR, hour TIMESTAMPTZ, was_success BOOLEAN)")


_TOUCHED = ("cycle_id, job_id, service_principal_id, source_id, " + HOUR_SQL.format(col="activity_time")
            + ", status = 'success'")


def refresh(con: duckdb.DuckDBPyConnection, keys: str | None) -> None:
    """Bring the derived tables up to date for the events whose ids are in temp table ``keys`` (just
    inserted or updated; None: every event, after a load into an empty store), plus the old keys
    :func:`note_old_keys` saw. Call inside the load's transaction."""
    _ensure_touched(con)
    of_keys = f"SEMI JOIN {keys} k ON e.id = k.id" if keys else ""
    con.execute(f"INSERT INTO derived_touched SELECT {_TOUCHED} FROM events e {of_keys}")
    updated = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'derived_updated' "
                          "AND temporary").fetchone()[0] > 0
    ident = ", ".join(IDENTITY_KEY)
    cyc = ", ".join(CYCLE_KEY)
    con.execute(f"CREATE OR REPLACE TEMP TABLE derived_identity_keys AS SELECT DISTINCT {ident} FROM derived_touched")
    con.execute(f"CREATE OR REPLACE TEMP TABLE derived_cycle_keys AS SELECT DISTINCT {cyc} FROM derived_touched")

    # Error codes whose failures change: those of the touched identities before and after the refresh.
    codes_of_touched = ("SELECT DISTINCT error_code FROM derived_failures f SEMI JOIN derived_identity_keys k "
                        f"ON {_match('f', 'k', IDENTITY_KEY)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE derived_code_keys AS {codes_of_touched}")
    con.execute(f"DELETE FROM derived_failures f USING derived_identity_keys k WHERE {_match('f', 'k', IDENTITY_KEY)}")
    con.execute(_insert("derived_failures", _FAILURE_COLUMNS, _FAILURES_SELECT,
                        f"SEMI JOIN derived_identity_keys k ON {_match('events', 'k', IDENTITY_KEY)}"))
    con.execute(f"INSERT INTO derived_code_keys {codes_of_touched}")

    _refresh_page_state(con)
    _refresh_identity_names(con, everything=keys is None)
    _refresh_identity_events(con, keys, updated)

    con.execute(f"DELETE FROM derived_cycles c USING derived_cycle_keys k WHERE {_match('c', 'k', CYCLE_KEY)}")
    con.execute(_insert("derived_cycles", CYCLE_COLUMNS, _CYCLES_SELECT,
                        f"SEMI JOIN derived_cycle_keys k ON {_match('events', 'k', CYCLE_KEY)}"))

    cycles = "(SELECT DISTINCT cycle_id FROM derived_cycle_keys)"  # heads: after derived_cycles (their sizes)
    con.execute(f"DELETE FROM derived_cycle_heads h USING {cycles} k WHERE h.cycle_id = k.cycle_id")
    con.execute(_insert("derived_cycle_heads", CYCLE_HEAD_COLUMNS, _CYCLE_HEADS_SELECT,
                        f"SEMI JOIN {cycles} k ON events.cycle_id = k.cycle_id"))

    # Hours: recount every touched hour from the events (the time range lets zone maps skip the rest).
    first, last = con.execute("SELECT min(hour), max(hour) FROM derived_touched").fetchone()
    con.execute("CREATE OR REPLACE TEMP TABLE derived_hour_keys AS SELECT DISTINCT hour FROM derived_touched")
    con.execute("DELETE FROM derived_event_hours h USING derived_hour_keys k WHERE h.hour = k.hour")
    con.execute(_insert("derived_event_hours", HOUR_COLUMNS, _HOURS_SELECT,
                        "WHERE activity_time >= $first AND activity_time < $last + INTERVAL 1 HOUR AND "
                        f"{HOUR_SQL.format(col='activity_time')} IN (SELECT hour FROM derived_hour_keys)"),
                {"first": first, "last": last})

    domains_before = con.execute("SELECT count(*) FROM derived_work_domains").fetchone()[0]
    if updated:  # an event may have stopped being a success: recount the domains from all events
        con.execute("DELETE FROM derived_work_domains")
        con.execute("INSERT INTO derived_work_domains " + _DOMAINS_SELECT.format(scope=""))
    elif con.execute("SELECT count(*) FROM derived_touched WHERE was_success").fetchone()[0]:
        scope = f"SEMI JOIN {keys} k ON events.id = k.id" if keys else ""
        con.execute("INSERT INTO derived_work_domains SELECT domain FROM (" + _DOMAINS_SELECT.format(scope=scope)
                    + ") ANTI JOIN derived_work_domains d USING (domain)")
    domains_now = con.execute("SELECT count(*) FROM derived_work_domains").fetchone()[0]
    _refresh_violation_groups(con, everything=updated or domains_now != domains_before)
    for table in ("derived_touched", "derived_updated", "derived_identity_keys", "derived_cycle_keys",
                  "derived_hour_keys", "derived_code_keys"):
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _refresh_page_state(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 6's page state for the touched keys: the identities' skips (per app and identity, over all
    their jobs), the error codes whose failures changed and the newest failures. After derived_failures."""
    people = "(SELECT DISTINCT service_principal_id, source_id FROM derived_identity_keys)"
    person = ("{t}.service_principal_id IS NOT DISTINCT FROM k.service_principal_id "
              "AND {t}.source_id IS NOT DISTINCT FROM k.source_id")
    for table, columns, select in (("derived_skip_identities", SKIP_IDENTITY_COLUMNS, _SKIP_IDENTITIES_SELECT),
                                   ("derived_skip_reasons", SKIP_REASON_COLUMNS, _SKIP_REASONS_SELECT)):
        con.execute(f"DELETE FROM {table} d USING {people} k WHERE {person.format(t='d')}")
        con.execute(_insert(table, columns, select, f"SEMI JOIN {people} k ON {person.format(t='events')}"))
    con.execute("DELETE FROM derived_error_codes d USING derived_code_keys k "
                "WHERE d.error_code IS NOT DISTINCT FROM k.error_code")
    con.execute(f"INSERT INTO derived_error_codes ({', '.join(ERROR_CODE_COLUMNS)}) " + _ERROR_CODES_SELECT.format(
        scope="SEMI JOIN derived_code_keys k ON derived_failures.error_code IS NOT DISTINCT FROM k.error_code"))
    _refresh_recent_failures(con)
    con.execute("DELETE FROM derived_skip_top")
    con.execute("INSERT INTO derived_skip_top " + skip_top_select("derived_skip_identities"))


def _refresh_recent_failures(con: duckdb.DuckDBPyConnection) -> None:
    """Keep derived_recent_failures = the newest RECENT_FAILURE_ROWS of derived_failures without sorting them
    all: drop the touched identities' rows, add the newest of their refreshed ones, and keep what ranks
    at or above the old last row (every untouched row there was already held). Too few left (failures
    went away): recompute from derived_failures."""
    rows = RECENT_FAILURE_ROWS
    held, last_time, last_id = con.execute(
        "SELECT count(*), arg_min(activity_time, (activity_time, id)), arg_min(id, (activity_time, id)) "
        "FROM derived_recent_failures").fetchone()
    con.execute("DELETE FROM derived_recent_failures f USING derived_identity_keys k "
                f"WHERE {_match('f', 'k', IDENTITY_KEY)}")
    con.execute("INSERT INTO derived_recent_failures " + _RECENT_FAILURES_SELECT.format(
        scope=f"SEMI JOIN derived_identity_keys k ON {_match('derived_failures', 'k', IDENTITY_KEY)}", rows=rows))
    if held >= rows:
        con.execute("DELETE FROM derived_recent_failures WHERE activity_time < $t OR (activity_time = $t AND id < $id)",
                    {"t": last_time, "id": last_id})
    con.execute("DELETE FROM derived_recent_failures WHERE id NOT IN (SELECT id FROM derived_recent_failures "
                f"ORDER BY activity_time DESC, id DESC LIMIT {rows})")
    kept = con.execute("SELECT count(*) FROM derived_recent_failures").fetchone()[0]
    if kept < rows and kept < con.execute("SELECT count(*) FROM derived_failures").fetchone()[0]:
        con.execute("DELETE FROM derived_recent_failures")
        con.execute("INSERT INTO derived_recent_failures " + _RECENT_FAILURES_SELECT.format(scope="", rows=rows))


def _refresh_violation_groups(con: duckdb.DuckDBPyConnection, *, everything: bool) -> None:
    """derived_violation_groups for the touched identities, or all of it when the work domains changed
    (a failure's kind depends on them). After derived_failures and derived_work_domains."""
    if everything:
        con.execute("DELETE FROM derived_violation_groups")
        con.execute(f"INSERT INTO derived_violation_groups ({', '.join(VIOLATION_GROUP_COLUMNS)}) "
                    + _VIOLATION_GROUPS_SELECT.format(scope=""))
        return
    con.execute(f"DELETE FROM derived_violation_groups d USING derived_identity_keys k "
                f"WHERE {_match('d', 'k', IDENTITY_KEY)}")
    con.execute(f"INSERT INTO derived_violation_groups ({', '.join(VIOLATION_GROUP_COLUMNS)}) "
                + _VIOLATION_GROUPS_SELECT.format(
                    scope=f"SEMI JOIN derived_identity_keys k ON {_match('e', 'k', IDENTITY_KEY)}"))


# ---- Migration 11: the names each identity went by (issue 7 B4, identity_search) ----
# derived_identity_names: the events grouped by every column identity_search matches on or lists (source
# id, UPN, userName, target id) plus the app and job it filters by, with what it aggregates (count, first
# and last time, the latest display name). A row matches the search exactly when its events do (the
# match reads only key columns), so the all-time search aggregates these ~80k rows (1M events) instead of
# four string columns of every event. The lower-cased UPN and userName are stored for the match; the
# userName only where it differs from the UPN (NULL matches nothing, and an equal one matches exactly
# when the UPN does), which saves the search a third of its scan. Rows are written sorted by source id, so
# identity_scim_requests' lookup of one identity's rows reads one row group (migration 14 sorts existing rows).
IDENTITY_NAME_COLUMNS = ("service_principal_id", "job_id", "source_id", "source_upn", "user_name", "target_id",
                         "source_upn_lower", "user_name_lower", "events", "first_seen", "last_seen",
                         "source_name", "source_name_time")
_IDENTITY_NAMES_SELECT = """
SELECT service_principal_id, job_id, source_id, source_upn, user_name, target_id,
       lower(source_upn), nullif(lower(user_name), lower(source_upn)), count(*), min(activity_time), max(activity_time),
       arg_max(source_name, activity_time), max(activity_time) FILTER (WHERE source_name IS NOT NULL)
FROM events {scope}
GROUP BY service_principal_id, job_id, source_id, source_upn, user_name, target_id
ORDER BY source_id
"""

MIGRATION_11 = [
    # Near-unique text stored uncompressed: the search reads every row, and decompressing DICT_FSST made
    # its scan ~2.5x slower (1M events: 79,674 rows, 11.8 -> 4.6 ms). OR REPLACE: applied again cleanly
    # when a store's schema_version is set back below 11 (a test of migration 7 does that).
    """CREATE OR REPLACE TABLE derived_identity_names (
        service_principal_id VARCHAR, job_id VARCHAR, source_id VARCHAR USING COMPRESSION uncompressed,
        source_upn VARCHAR USING COMPRESSION uncompressed, user_name VARCHAR USING COMPRESSION uncompressed,
        target_id VARCHAR USING COMPRESSION uncompressed, source_upn_lower VARCHAR USING COMPRESSION uncompressed,
        user_name_lower VARCHAR USING COMPRESSION uncompressed, events BIGINT, first_seen TIMESTAMPTZ,
        last_seen TIMESTAMPTZ, source_name VARCHAR USING COMPRESSION uncompressed, source_name_time TIMESTAMPTZ
    )""",
    _insert("derived_identity_names", IDENTITY_NAME_COLUMNS, _IDENTITY_NAMES_SELECT, ""),
]


def _refresh_identity_names(con: duckdb.DuckDBPyConnection, everything: bool) -> None:
    """derived_identity_names for the touched identities (``derived_identity_keys``: their old and new
    keys), or rebuilt from all events after a load into an empty store."""
    if everything:
        con.execute("DELETE FROM derived_identity_names")
        con.execute(_insert("derived_identity_names", IDENTITY_NAME_COLUMNS, _IDENTITY_NAMES_SELECT, ""))
        return
    con.execute(f"DELETE FROM derived_identity_names d USING derived_identity_keys k "
                f"WHERE {_match('d', 'k', IDENTITY_KEY)}")
    con.execute(_insert("derived_identity_names", IDENTITY_NAME_COLUMNS, _IDENTITY_NAMES_SELECT,
                        f"SEMI JOIN derived_identity_keys k ON {_match('events', 'k', IDENTITY_KEY)}"))


# ---- Migration 16: one identity's events together (issue 7 B4, identity_events) ----
# An identity's events arrive over the whole log, so in the time-ordered events table they lie in every row group:
# identity_events fetched ~100 rows from ~40 row groups through the index of migration 12 (5M events: 53 ms p50).
# derived_identity_events holds the columns identity_events shows and filters on, sorted by source id (then time),
# so zone maps find one identity's rows in one row group. A load appends its new events (and replaces the rows of
# re-sent events that changed); when the appended rows exceed a quarter of the sorted ones, the table is rewritten
# sorted (``meta`` holds the sorted row count and the replaced rows: :func:`sorted_copy_due`, also used for the SCIM
# requests' copy, which only appends).
IDENTITY_EVENT_COLUMNS = ("source_id", "activity_time", "id", "service_principal_id", "service_principal_name",
                          "job_id", "action", "status", "error_code", "skip_category", "user_name", "target_id",
                          "cycle_id")
_IDENTITY_EVENTS_SELECT = (f"SELECT {', '.join(IDENTITY_EVENT_COLUMNS)} FROM events {{scope}} "
                           "ORDER BY source_id NULLS LAST, activity_time, id")
IDENTITY_EVENTS_SORTED_META = "identity_events_sorted_rows"


def sorted_rows_meta(table: str, key: str) -> str:
    """SQL that records ``table``'s row count as its sorted part in ``meta`` under ``key``."""
    return (f"INSERT INTO meta SELECT '{key}', count(*)::VARCHAR FROM {table} "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value")


def replaced_rows_key(key: str) -> str:
    """``meta`` key counting the rows of the sorted part that were replaced by appended rows since the sort."""
    return key + "_replaced"


def sorted_copy_due(con: duckdb.DuckDBPyConnection, table: str, key: str, adding: int = 0) -> bool:
    """Whether the rows appended to ``table`` since its last sort (``meta`` ``key``: the sorted row count; rows that
    replaced sorted ones count too, :func:`replaced_rows_key`), plus ``adding`` about to be, exceed a quarter of
    the sorted ones."""
    rows, = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    sorted_rows = _meta_count(con, key)
    replaced = _meta_count(con, replaced_rows_key(key))
    return rows + adding - sorted_rows + replaced > sorted_rows / 4


def _meta_count(con: duckdb.DuckDBPyConnection, key: str) -> int:
    """A count kept in ``meta`` (0 when absent); one key per query: other keys' values are not numbers."""
    return con.execute("SELECT coalesce(max(value::BIGINT), 0) FROM meta WHERE key = ?", [key]).fetchone()[0]


def _count_replaced(con: duckdb.DuckDBPyConnection, key: str, rows: int) -> None:
    con.execute("INSERT INTO meta VALUES ($1, $2::VARCHAR) ON CONFLICT (key) DO UPDATE "
                "SET value = (meta.value::BIGINT + excluded.value::BIGINT)::VARCHAR", [replaced_rows_key(key), rows])


_REWRITE_IDENTITY_EVENTS = [
    "DELETE FROM derived_identity_events",
    "INSERT INTO derived_identity_events " + _IDENTITY_EVENTS_SELECT.format(scope=""),
    sorted_rows_meta("derived_identity_events", IDENTITY_EVENTS_SORTED_META),
    f"DELETE FROM meta WHERE key = '{replaced_rows_key(IDENTITY_EVENTS_SORTED_META)}'",
]
MIGRATION_16 = [
    "CREATE OR REPLACE TABLE derived_identity_events AS " + _IDENTITY_EVENTS_SELECT.format(scope=""),
    sorted_rows_meta("derived_identity_events", IDENTITY_EVENTS_SORTED_META),
    "DROP INDEX IF EXISTS events_source_id",  # migration 12's index: nothing looks events up by source id now
]

# Migration 17: the skipped page's top identities per category (B4 at 1M: the min_by over every identity took
# ~14 ms of the page's 500-row query).
MIGRATION_17 = ["CREATE OR REPLACE TABLE derived_skip_top AS " + skip_top_select("derived_skip_identities")]


def _refresh_identity_events(con: duckdb.DuckDBPyConnection, keys: str | None, updated: bool) -> None:
    """Append the events of ``keys`` (re-sent ones replace their old rows), or rewrite the table sorted after a
    load into an empty store or when the appended part is due."""
    if keys is not None:
        adding = con.execute(f"SELECT count(*) FROM {keys}").fetchone()[0]
        if not sorted_copy_due(con, "derived_identity_events", IDENTITY_EVENTS_SORTED_META, adding):
            if updated:  # a re-sent event's new row goes to the unsorted end: counted towards the next rewrite
                replaced, = con.execute(
                    f"DELETE FROM derived_identity_events d USING {keys} k WHERE d.id = k.id").fetchone()
                _count_replaced(con, IDENTITY_EVENTS_SORTED_META, replaced)
            con.execute("INSERT INTO derived_identity_events "
                        + _IDENTITY_EVENTS_SELECT.format(scope=f"SEMI JOIN {keys} k ON events.id = k.id"))
            return
    for sql in _REWRITE_IDENTITY_EVENTS:  # the rewrite reads every event: no append first (a first pull: 2x)
        con.execute(sql)
