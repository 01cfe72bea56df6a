"""The analytic datasets behind the exports and the dashboard's cycles, failures, skips and violations.

Each dataset is one named query (stable column order, stable row order: time, then id) registered in
:data:`queries.catalog.QUERIES`; ``python -m queries export NAME`` and the dashboard pages run the
same SQL. Column meanings are documented in ``docs/exports.md`` (a contract: change it only with a
version bump). All take the shared filters ($since, $until, $sps, $job) where they apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.skip_reasons import ADVICE_VALUES
from ingest.summaries.events import open_runs, violation_groups
from queries.filters import (
    DETAIL_FILTER,
    EVENT_FILTER,
    NO_TYPE_FILTER,
    SCOPE_FILTER,
    SINCE,
    TYPE_FILTER,
    UNTIL,
    detail_filter,
    time_filter,
)
from queries.named import q
from queries.preflight import PREFLIGHT_COLUMNS
from queries.scim import EXPORT_DATASETS as _SCIM_DATASETS

EVENT_EXPORT_COLUMNS = [
    "id", "activity_time", "tenant_id", "job_id", "cycle_id", "change_id", "service_principal_id",
    "service_principal_name", "action", "status", "error_code", "error_category", "error_reason",
    "source_id", "source_name", "source_upn", "target_id", "user_name", "duration_ms", "source_type", "target_type",
]


@dataclass(frozen=True)
class Dataset:
    """An exportable dataset: its query name, its columns and the column that dates a row ("" when none does)."""

    name: str
    columns: tuple[str, ...]
    time_column: str


_EVENT_COLS = ", ".join(EVENT_EXPORT_COLUMNS)

FAILURE_COLUMNS = (*EVENT_EXPORT_COLUMNS, "http_status", "scim_type", "scim_detail", "next_retry_at",
                   "consecutive_cycles", "recommended_action")
SKIPPED_COLUMNS = (*EVENT_EXPORT_COLUMNS, "skip_reason", "skip_category", "skip_detail", "recommended_action")
VIOLATION_COLUMNS = ("kind", "user_name", "email_domain", "source_id", "service_principal_id", "first_seen",
                     "last_seen", "occurrences", "state", "resolved_at", "evidence", "source_name", "source_type",
                     "target_type")
CYCLE_COLUMNS = ("job_id", "cycle_id", "service_principal_id", "started_at", "ended_at", "duration_s", "events",
                 "created", "updated", "disabled", "deleted", "other", "success", "failure", "skipped",
                 "warning", "kind", "gap_before_min")
SYNC_JOB_COLUMNS = ("job_id", "captured_at", "service_principal_id", "template_id", "schedule_interval",
                    "schedule_state", "status_code", "quarantine_reason", "quarantine_since",
                    "quarantine_series_began", "quarantine_next_attempt", "last_execution_state",
                    "last_execution_began", "last_execution_ended", "last_success_ended", "successive_failures",
                    "steady_state_last")
RECURRING_FAILURE_COLUMNS = ("service_principal_id", "job_id", "source_id", "source_upn", "user_name",
                             "consecutive_cycles", "failing_since", "last_failure", "error_code", "recommended_action")
INGEST_RUN_COLUMNS = ("run_id", "source", "scope", "started_at", "ended_at", "window_start", "window_end",
                      "pages", "records_read", "records_new", "records_updated", "records_rejected", "retries",
                      "throttled", "outcome", "message")
INGEST_REJECT_COLUMNS = ("run_id", "source", "file", "position", "reason", "excerpt", "rejected_at")

# The failures and skipped datasets (and the events dataset, queries/catalog.py) take the event filters
# (queries/filters.py: status, action, error code, skip category, identity, cycle, change) too.
# A failure's run: failures of one identity (source_id within service principal and job) in a row,
# ordered by time, reset by a success of that identity; skipped/warning events neither count nor reset.
# consecutive_cycles counts the distinct cycles of the run up to and including this event. The store
# keeps it (and recommended_action) per failed event in derived_failures (ingest/summaries/events.py), so this
# reads one small table instead of window functions over every outcome.
FAILURES_SQL = f"""
SELECT {_EVENT_COLS}, http_status, scim_type, scim_detail, next_retry_at, consecutive_cycles, recommended_action
FROM derived_failures
WHERE {{EVENT_FILTER}} AND {detail_filter(skip=False)}
ORDER BY activity_time, id
"""

# Recurring failures: identities (app, job, source object) still failing at the period's end - their latest
# success-or-failure event before $until is a failure - whose current run of failures (every failure after
# their latest success) spans 2 or more cycles, listed when that run's latest failure lies in the period.
# Only the current run is shown: runs that a success ended are history (the failures dataset keeps them).
# A failure belongs to the run open at $until when no success of the identity follows it before $until
# (derived_failures.next_success_at); its consecutive_cycles counts the run's cycles up to it, so the run's
# length is the largest. Reference: queries/reference.py.
# A period running to now reads the runs open now (derived_open_runs); one ending earlier computes them from
# derived_failures with the same text (ingest.summaries.events.open_runs).
# An identity-type filter reads derived_failures too (derived_open_runs is per identity, not per type).
_OPEN_RUNS_STORED = f"($until::TIMESTAMPTZ IS NULL AND {NO_TYPE_FILTER})"
OPEN_RUNS_SQL = f"""(
    SELECT * FROM derived_open_runs WHERE {_OPEN_RUNS_STORED} AND {SCOPE_FILTER}
    UNION ALL
    {open_runs(f"(SELECT * FROM derived_failures WHERE NOT {_OPEN_RUNS_STORED} AND source_id IS NOT NULL "
               f"AND service_principal_id IS NOT NULL AND activity_time < {UNTIL} "
               f"AND coalesce(next_success_at, 'infinity'::TIMESTAMPTZ) >= {UNTIL} AND {SCOPE_FILTER} "
               f"AND {TYPE_FILTER})")})"""
RECURRING_FAILURES_SQL = f"""
SELECT {', '.join(RECURRING_FAILURE_COLUMNS)} FROM {OPEN_RUNS_SQL} AS r
WHERE consecutive_cycles >= 2 AND last_failure >= {SINCE}
ORDER BY consecutive_cycles DESC, last_failure DESC, service_principal_id, job_id, source_id
"""

# recommended_action: what to do about the skip's category (the skip-reason table, ingest/skip_reasons.py).
SKIPPED_SQL = f"""
SELECT {_EVENT_COLS}, skip_reason, skip_category, skip_detail, skip_advice.what_to_do AS recommended_action
FROM events LEFT JOIN {ADVICE_VALUES} USING (skip_category)
WHERE status = 'skipped' AND {{EVENT_FILTER}} AND {DETAIL_FILTER}
ORDER BY activity_time, id
"""

# Violations: failures classified by kind, one row per (kind, service principal, identity).
# $allowed_domains (VARCHAR[]) lists the org's email domains; NULL derives them from the UPN domains
# of successful events and the email domains of successful creates (kept by the store in
# derived_work_domains). Failures come from derived_failures, where next_success_at is the identity's
# first success strictly after each failure: the first success after a group's last failure resolves it.
# All time with the default domains: the store's groups (derived_violation_groups); anything else: the same text
# (ingest.summaries.events.violation_groups) over the period's failures. A constant once bound.
_STORED_GROUPS = ("($since::TIMESTAMPTZ IS NULL AND $until::TIMESTAMPTZ IS NULL AND $sps::VARCHAR[] IS NULL "
                  "AND $job::VARCHAR IS NULL AND $allowed_domains::VARCHAR[] IS NULL AND $types::VARCHAR[] IS NULL)")
_VIOLATIONS_CORE = f"""
allowed AS (
    SELECT DISTINCT domain FROM (
        SELECT unnest($allowed_domains::VARCHAR[]) AS domain WHERE $allowed_domains::VARCHAR[] IS NOT NULL
        UNION ALL
        SELECT domain FROM derived_work_domains WHERE $allowed_domains::VARCHAR[] IS NULL)
),
grouped AS (
    SELECT * FROM derived_violation_groups WHERE {_STORED_GROUPS}
    UNION ALL
    {violation_groups(f"derived_failures WHERE {EVENT_FILTER} AND NOT {_STORED_GROUPS}", "allowed")}
),
resolved AS (
    SELECT kind, service_principal_id, source_id, min(next_success_at) AS resolved_at
    FROM grouped
    WHERE next_success_at < coalesce($until::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ)
    GROUP BY ALL
)"""

_VIOLATIONS_SELECT = """
SELECT g.kind, g.user_name, g.email_domain, g.source_id, g.service_principal_id, g.first_seen, g.last_seen,
       g.occurrences, CASE WHEN r.resolved_at IS NULL THEN 'open' ELSE 'resolved' END AS state,
       r.resolved_at, {evidence} AS evidence, g.source_name, g.source_type, g.target_type
FROM grouped g LEFT JOIN resolved r USING (kind, service_principal_id, source_id)
ORDER BY g.first_seen, g.kind, g.service_principal_id, g.source_id
"""

VIOLATIONS_ENTRA_SQL = "WITH " + _VIOLATIONS_CORE + _VIOLATIONS_SELECT.format(evidence="'entra'")

# With the SCIM audit trail: a violation also seen by the SCIM server (a 409 for a duplicate, a 400
# for a rejected value, for the same externalId or userName within 15 minutes of the Entra failures).
VIOLATIONS_SCIM_SQL = "WITH " + _VIOLATIONS_CORE + """,
-- Only 400/409 answers can be evidence. The store keeps them (ingest/scim/derived.py, at each SCIM load):
-- derived_scim_error_answers (time, status, externalId, lower(userName); ~5% of the trail) and, per
-- (status, key), the first and last answer (derived_scim_error_keys). A group has evidence when an answer
-- with its status and key lies in [first_seen - 15 min, last_seen + 15 min]: the first or last answer
-- inside decides yes, both on one side decide no; only a window strictly between the two reads the answers.
scim_candidates AS (  -- equi-joins on (status, key), one per key kind
    SELECT g.kind, g.service_principal_id, g.source_id, g.first_seen - INTERVAL 15 MINUTE AS lo,
           g.last_seen + INTERVAL 15 MINUTE AS hi, k.status, k.key_kind, k.key, k.first_ts, k.last_ts
    FROM grouped g JOIN derived_scim_error_keys k
      ON k.key_kind = 'external_id' AND k.key = g.source_id
     AND k.status = CASE WHEN g.kind LIKE 'duplicate%' THEN 409 ELSE 400 END
    UNION ALL
    SELECT g.kind, g.service_principal_id, g.source_id, g.first_seen - INTERVAL 15 MINUTE,
           g.last_seen + INTERVAL 15 MINUTE, k.status, k.key_kind, k.key, k.first_ts, k.last_ts
    FROM grouped g JOIN derived_scim_error_keys k
      ON k.key_kind = 'user_name' AND k.key = lower(g.user_name)
     AND k.status = CASE WHEN g.kind LIKE 'duplicate%' THEN 409 ELSE 400 END
),
undecided AS (SELECT * FROM scim_candidates WHERE first_ts < lo AND last_ts > hi),
scim_seen AS (
    SELECT kind, service_principal_id, source_id FROM scim_candidates
    WHERE first_ts BETWEEN lo AND hi OR last_ts BETWEEN lo AND hi
    UNION
    SELECT u.kind, u.service_principal_id, u.source_id
    FROM undecided u JOIN derived_scim_error_answers s ON s.status = u.status AND s.external_id = u.key
    WHERE u.key_kind = 'external_id' AND s.ts BETWEEN u.lo AND u.hi
    UNION
    SELECT u.kind, u.service_principal_id, u.source_id
    FROM undecided u JOIN derived_scim_error_answers s ON s.status = u.status AND s.user_name_lower = u.key
    WHERE u.key_kind = 'user_name' AND s.ts BETWEEN u.lo AND u.hi
)""" + _VIOLATIONS_SELECT.format(
    evidence="CASE WHEN EXISTS (SELECT 1 FROM scim_seen x WHERE x.kind = g.kind AND "
             "x.service_principal_id = g.service_principal_id AND x.source_id = g.source_id) "
             "THEN 'both' ELSE 'entra' END")


# Cycles: one row per (job_id, cycle_id) over events. initial = the job's first cycle in the database,
# or a cycle with a full-import step ("Retrieved ..."); a long gap alone does not make a cycle initial
# (quarantine retries come 6-24 h apart and are incremental). gap_before_min = minutes from the
# previous cycle's start (same job) to this one's start (expected cadence 40 minutes).
CYCLES_SQL = """
WITH per_cycle AS (
    SELECT job_id, cycle_id, any_value(service_principal_id) AS service_principal_id,
           min(started_at) AS started_at, max(ended_at) AS ended_at, sum(events)::BIGINT AS events,
           sum(created)::BIGINT AS created, sum(updated)::BIGINT AS updated,
           sum(disabled)::BIGINT AS disabled, sum(deleted)::BIGINT AS deleted, sum(other)::BIGINT AS other,
           sum(success)::BIGINT AS success, sum(failure)::BIGINT AS failure,
           sum(skipped)::BIGINT AS skipped, sum(warning)::BIGINT AS warning,
           bool_or(full_import) AS full_import
    FROM derived_cycles
    WHERE """ + SCOPE_FILTER + """
    GROUP BY job_id, cycle_id
),
ordered AS (
    SELECT *, row_number() OVER (PARTITION BY job_id ORDER BY started_at, cycle_id) AS seq,
           lag(started_at) OVER (PARTITION BY job_id ORDER BY started_at, cycle_id) AS previous_start
    FROM per_cycle
)
SELECT job_id, cycle_id, service_principal_id, started_at, ended_at,
       round(epoch(ended_at) - epoch(started_at), 3) AS duration_s, events, created, updated, disabled,
       deleted, other, success, failure, skipped, warning,
       CASE WHEN seq = 1 OR coalesce(full_import, false) THEN 'initial' ELSE 'incremental' END AS kind,
       round((epoch(started_at) - epoch(previous_start)) / 60.0, 1) AS gap_before_min
FROM ordered
WHERE """ + time_filter("started_at") + """
ORDER BY started_at, job_id, cycle_id
"""

SYNC_JOBS_SQL = f"""
SELECT {', '.join(SYNC_JOB_COLUMNS)}
FROM sync_job_snapshots
WHERE {time_filter('captured_at')} AND {SCOPE_FILTER}
ORDER BY captured_at, job_id
"""

INGEST_RUNS_SQL = f"""
SELECT {', '.join(INGEST_RUN_COLUMNS)}
FROM ingest_runs WHERE {time_filter('started_at')}
ORDER BY started_at, run_id
"""

INGEST_REJECTS_SQL = f"""
SELECT {', '.join(INGEST_REJECT_COLUMNS)}
FROM ingest_rejects WHERE {time_filter('rejected_at')}
ORDER BY rejected_at, run_id, file, position
"""

QUERY_LIST = [
        q("failures", "One row per failed event with the parsed SCIM error, its run of failures and what to do",
          FAILURES_SQL),
        q("recurring-failures", "Identities still failing at the period's end in 2+ cycles in a row: the current "
          "run's length, when it began, its latest error and what to do", RECURRING_FAILURES_SQL),
        q("skipped", "One row per skipped event with Entra's skip reason, our skip category and what to do",
          SKIPPED_SQL),
        q("violations", "Constraint violations (duplicate userName or group name, non-work email, other rejected "
          "value) "
          "per identity, open or resolved",
          VIOLATIONS_SCIM_SQL),
        q("cycles", "One row per sync cycle: window, counts by action and status, initial/incremental, gap",
          CYCLES_SQL),
        q("sync-jobs", "Provisioning job status history (snapshots of /synchronization/jobs)", SYNC_JOBS_SQL),
        q("ingest-runs", "Every ingest run: source, window, counts, outcome", INGEST_RUNS_SQL),
        q("ingest-rejects", "Input that could not be loaded: run, source, file, position, reason", INGEST_REJECTS_SQL),
]


DATASETS: dict[str, Dataset] = {
    "events": Dataset("events", tuple(EVENT_EXPORT_COLUMNS), "activity_time"),
    "failures": Dataset("failures", FAILURE_COLUMNS, "activity_time"),
    "skipped": Dataset("skipped", SKIPPED_COLUMNS, "activity_time"),
    "recurring-failures": Dataset("recurring-failures", RECURRING_FAILURE_COLUMNS, "last_failure"),
    "violations": Dataset("violations", VIOLATION_COLUMNS, "last_seen"),
    "cycles": Dataset("cycles", CYCLE_COLUMNS, "ended_at"),
    "sync-jobs": Dataset("sync-jobs", SYNC_JOB_COLUMNS, "captured_at"),
    "ingest-runs": Dataset("ingest-runs", INGEST_RUN_COLUMNS, "started_at"),
    "ingest-rejects": Dataset("ingest-rejects", INGEST_REJECT_COLUMNS, "rejected_at"),
    # Preflight findings (queries/preflight.py, the named query "preflight"): no time column of their own (the
    # period filters the runs' start).
    "preflight": Dataset("preflight", PREFLIGHT_COLUMNS, ""),
}

# SCIM audit trail datasets (columns documented in queries/scim.py and docs/exports.md).
DATASETS.update({name: Dataset(name, tuple(columns), time_column) for name, columns, time_column in _SCIM_DATASETS})
