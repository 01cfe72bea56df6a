"""Dashboard aggregates that are not export datasets: trends over time, current job status, the
quarantine periods and missed cycles, identities to fix, the identity search and timeline.

Queries that need the datasets' logic (cycle gaps, consecutive failures, violations) wrap the
dataset's own SQL from :mod:`queries.datasets` as a subquery instead of repeating it.
"""

from __future__ import annotations

import re

from ingest.audit_sql import CONFIG_ACTIVITIES, QUARANTINE_CLEARING, RELEASE_WORDS
from ingest.skip_reasons import ADVICE_VALUES
from ingest.summaries.events import (
    SKIP_TOP_ROWS,
    error_code_aggregate,
    skip_identity_aggregate,
    skip_reason_aggregate,
    skip_top,
)
from queries import datasets
from queries.filters import (
    DAY_OF_HOUR,
    DETAIL_UNSET,
    EVENT_COUNTS,
    EVENT_FILTER,
    SCOPE_FILTER,
    SINCE,
    TYPE_FILTER,
    UNTIL,
    scope_filter,
    time_filter,
)
from queries.named import q

# Expected cadence of an Entra provisioning job, and how late a cycle may be before it counts as missed.
CYCLE_MINUTES = 40
MISSED_AFTER_MINUTES = 1.5 * CYCLE_MINUTES

# True when the shared filters are all unset (all time, every app and job): a constant once bound, so DuckDB
# drops the branch that is not taken.
_UNFILTERED = ("($since::TIMESTAMPTZ IS NULL AND $until::TIMESTAMPTZ IS NULL AND $sps::VARCHAR[] IS NULL "
               f"AND $job::VARCHAR IS NULL AND $types::VARCHAR[] IS NULL AND {DETAIL_UNSET})")

# True when a time window is set: a constant once the parameters are bound, so without a window the plan
# has no events scan at all.
_TIME_WINDOW = "($since::TIMESTAMPTZ IS NOT NULL OR $until::TIMESTAMPTZ IS NOT NULL)"


def _sorted_distinct(column: str) -> str:
    """Aggregate: the column's distinct non-NULL values, sorted, joined with ', ' (NULL when there are none) -
    string_agg(DISTINCT column, ', ' ORDER BY column), ~20% cheaper over many groups."""
    return f"CASE WHEN count({column}) > 0 THEN array_to_string(list_sort(list_distinct(list({column}))), ', ') END"


# App names from the store's per-cycle summaries (ingest/summaries/events.py), not a scan of every event.
_APP_NAMES = """(SELECT service_principal_id, any_value(service_principal_name) AS service_principal_name
                 FROM derived_cycles GROUP BY service_principal_id)"""

_QUARANTINE_PERIODS = f"""
    WITH s AS (
        SELECT job_id, service_principal_id, captured_at, quarantine_since, quarantine_reason,
               quarantine_next_attempt, status_code = 'Quarantine' AS quarantined,
               coalesce(lag(status_code = 'Quarantine') OVER w, false) AS was_quarantined,
               lead(captured_at) OVER w AS next_captured
        FROM sync_job_snapshots WHERE {SCOPE_FILTER}
        WINDOW w AS (PARTITION BY job_id ORDER BY captured_at)),
    g AS (
        SELECT *, sum(CASE WHEN quarantined AND NOT was_quarantined THEN 1 ELSE 0 END)
                      OVER (PARTITION BY job_id ORDER BY captured_at) AS period
        FROM s)
    SELECT job_id, any_value(service_principal_id) AS service_principal_id,
           coalesce(min(quarantine_since), min(captured_at)) AS began,
           arg_max(next_captured, captured_at) AS ended,
           arg_min(quarantine_reason, captured_at) AS reason,
           arg_max(quarantine_next_attempt, captured_at) AS last_next_attempt,
           count(*) AS snapshots
    FROM g WHERE quarantined
    GROUP BY job_id, period"""

# The directory audit log's words (ingest/audit_sql.py), as SQL lists.
_CLEARING = ", ".join(f"'{a}'" for a in QUARANTINE_CLEARING)
_CONFIG_KIND = "CASE lower(activity_display_name) " + " ".join(
    f"WHEN '{a}' THEN '{k}'" for a, k in CONFIG_ACTIVITIES.items()) + " END"
_CONFIG_NAMES = ", ".join(f"'{a}'" for a in CONFIG_ACTIVITIES)

# Quarantine periods from the directory audit log (issue 24): per job (or app, where an entry names no job), a
# Quarantine entry starts a period unless the job is already in one; the period ends at the first entry after it that
# takes the job out (a restart, which Microsoft says clears quarantine, or a Quarantine entry saying it was
# released), and at the latest at the job's first snapshot after its start that is not in quarantine or the start of
# its first cycle after it with a successful event (Microsoft: a successful retry takes the job out of quarantine).
# At equal times an ending entry comes first.
_AUDIT_QUARANTINE_PERIODS = f"""
    WITH r AS (
        SELECT id, activity_time, job_id, service_principal_id, service_principal_name,
               coalesce(job_id, service_principal_id) AS job_key, coalesce(result_reason, '') AS reason,
               lower(activity_display_name) = 'quarantine'
                   AND NOT regexp_matches(coalesce(result_reason, ''), '{RELEASE_WORDS}') AS enters
        FROM directory_audits
        WHERE (lower(activity_display_name) = 'quarantine' OR lower(activity_display_name) IN ({_CLEARING}))
          AND coalesce(job_id, service_principal_id) IS NOT NULL),
    l AS (SELECT *, coalesce(lag(enters) OVER w, false) AS was_in FROM r
          WINDOW w AS (PARTITION BY job_key ORDER BY activity_time, enters, id)),
    g AS (SELECT *, sum(CASE WHEN enters AND NOT was_in THEN 1 ELSE 0 END)
                        OVER (PARTITION BY job_key ORDER BY activity_time, enters, id) AS period FROM l),
    p AS (SELECT job_key, any_value(job_id) FILTER (WHERE enters AND NOT was_in) AS job_id,
                 any_value(service_principal_id) FILTER (WHERE enters AND NOT was_in) AS service_principal_id,
                 min(activity_time) FILTER (WHERE enters) AS began,
                 min(activity_time) FILTER (WHERE NOT enters) AS cleared,
                 any_value(reason) FILTER (WHERE enters AND NOT was_in) AS reason,
                 any_value(service_principal_name) FILTER (WHERE enters AND NOT was_in) AS app_name
          FROM g GROUP BY job_key, period HAVING count(*) FILTER (WHERE enters) > 0)
    SELECT job_id, service_principal_id, began,
           least(cleared, (SELECT min(captured_at) FROM sync_job_snapshots x
                           WHERE (x.job_id = p.job_id OR (p.job_id IS NULL
                                  AND x.service_principal_id = p.service_principal_id))
                             AND x.captured_at > p.began AND x.status_code <> 'Quarantine'),
                 (SELECT min(c.started_at) FROM derived_cycles c
                  WHERE (c.job_id = p.job_id OR (p.job_id IS NULL AND c.service_principal_id = p.service_principal_id))
                    AND c.started_at > p.began AND c.success > 0)) AS ended,
           reason, app_name
    FROM p"""

# Every quarantine period: the job snapshots' ones, and the audit log's that overlap none of the same job (known only
# from the audit log: before the snapshots began, or between two of them).
_ALL_QUARANTINE_PERIODS = f"""
    WITH snap AS ({_QUARANTINE_PERIODS}),
    audit AS (SELECT * FROM ({_AUDIT_QUARANTINE_PERIODS}) WHERE {SCOPE_FILTER})
    SELECT job_id, service_principal_id, began, ended, reason, last_next_attempt, snapshots,
           'job snapshots' AS source, NULL::VARCHAR AS app_name
    FROM snap
    UNION ALL
    SELECT a.job_id, a.service_principal_id, a.began, a.ended, a.reason, NULL::TIMESTAMPTZ, 0, 'audit log',
           a.app_name
    FROM audit a
    WHERE NOT EXISTS (SELECT 1 FROM snap s
                      WHERE (s.job_id = a.job_id
                             OR (a.job_id IS NULL AND s.service_principal_id = a.service_principal_id))
                        AND s.began < coalesce(a.ended, 'infinity'::TIMESTAMPTZ)
                        AND coalesce(s.ended, 'infinity'::TIMESTAMPTZ) > a.began)"""


def _dataset_sql(name: str) -> str:
    """The SQL of an export dataset (with the shared filter already in it), for use as a subquery."""
    for query in datasets.QUERY_LIST:
        if query.name == name:
            return query.sql
    raise KeyError(f"queries.datasets has no dataset {name!r}")


def _unordered(sql: str) -> str:
    """``sql`` without its final top-level ORDER BY (DuckDB would sort every row before the outer LIMIT)."""
    return re.sub(r"\s+ORDER BY [^()]*$", "", sql.rstrip())


def _wrapping_queries() -> list:
    """Aggregates over the export datasets (cycles, failures, violations)."""
    cycles, failures = _dataset_sql("cycles"), _dataset_sql("failures")
    violations_entra = _unordered(datasets.VIOLATIONS_ENTRA_SQL.replace("{EVENT_FILTER}", EVENT_FILTER))
    # Per error code over the failures dataset: all time from the store's per-code summary (derived_error_codes),
    # a period or an app from its failures; one text (ingest.summaries.events.error_code_aggregate).
    top_errors = f"""
        SELECT * FROM derived_error_codes WHERE {_UNFILTERED}
        UNION ALL
        {error_code_aggregate(f"({_unordered(failures)}) AS f WHERE NOT {_UNFILTERED}")}"""
    return [
        q("cycles_timeline", "Every sync cycle in the period with its app name (from the cycles dataset)", f"""
            SELECT c.*, n.service_principal_name
            FROM ({cycles}) AS c LEFT JOIN {_APP_NAMES} AS n USING (service_principal_id)
            ORDER BY c.started_at, c.cycle_id"""),
        q("last_cycle", "The latest cycle per job in the period and its outcome", f"""
            SELECT c.job_id, c.service_principal_id, n.service_principal_name, c.cycle_id, c.kind,
                   c.started_at, c.ended_at, c.events, c.success, c.failure, c.skipped,
                   CASE WHEN c.failure > 0 AND c.success = 0 THEN 'failed'
                        WHEN c.failure > 0 THEN 'partly failed' ELSE 'succeeded' END AS outcome
            FROM ({cycles}) AS c LEFT JOIN {_APP_NAMES} AS n USING (service_principal_id)
            QUALIFY row_number() OVER (PARTITION BY c.job_id ORDER BY c.started_at DESC) = 1
            ORDER BY n.service_principal_name, c.job_id"""),
        q("top_errors", "Failures by error code: count, identities, first/last seen, parsed SCIM reply, action",
          top_errors + " ORDER BY failures DESC, error_code"),
        q("top_error_codes", "The $limit most frequent failure codes, with identities affected and first/last seen "
          "(the top_errors rows, fewer columns)", f"""
            SELECT * FROM (
                SELECT error_code, failures, identities, first_seen, last_seen, http_status, scim_type
                FROM derived_error_codes WHERE {_UNFILTERED}
                UNION ALL
                {error_code_aggregate(f"({_unordered(failures)}) AS f WHERE NOT {_UNFILTERED}", details=False)})
            ORDER BY failures DESC, error_code LIMIT $limit"""),
        q("allowed_email_domains", "The email domains the violations dataset treats as work domains", f"""
            WITH {datasets._VIOLATIONS_CORE} SELECT domain FROM allowed WHERE domain IS NOT NULL ORDER BY domain"""),
        # Counts need no SCIM evidence: the Entra-only violations (same rows, kinds and states), unsorted.
        q("violations_summary", "Constraint violations by kind and state", f"""
            SELECT kind, state, count(*) AS violations FROM ({violations_entra}) AS v
            GROUP BY ALL ORDER BY kind, state"""),
    ]


QUERY_LIST = [
    q("identity_types", "Entra's identity types seen in the events (User, Group, ...), for the identity-type filter",
      """
        SELECT source_type, sum(events)::BIGINT AS events FROM derived_event_hours WHERE source_type IS NOT NULL
        GROUP BY source_type ORDER BY events DESC, source_type"""),
    q("skip_categories", "Every skip category with its label and what to do (the skip-reason table)", f"""
        SELECT skip_category, label, what_to_do FROM {ADVICE_VALUES}"""),
    q("tables", "The tables the database holds (to tell a missing feature from an empty one)", """
        SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY table_name"""),
    q("table_rows", "Row count of every table (estimated by DuckDB's storage)", """
        SELECT table_name, estimated_size AS rows FROM duckdb_tables() WHERE schema_name = 'main'
        ORDER BY table_name"""),
    q("jobs", "Provisioning jobs seen in the events, with their enterprise app", """
        SELECT job_id, any_value(service_principal_id) AS service_principal_id,
               any_value(service_principal_name) AS service_principal_name, sum(events)::BIGINT AS events
        FROM derived_cycles WHERE job_id IS NOT NULL
        GROUP BY job_id ORDER BY service_principal_name, job_id"""),
    q("job_status", "The current status of each job: its latest synchronization-job snapshot", f"""
        SELECT s.job_id, s.service_principal_id, n.service_principal_name, s.captured_at, s.status_code,
               s.quarantine_reason, s.quarantine_since, s.quarantine_next_attempt, s.successive_failures,
               s.last_execution_state, s.last_execution_began, s.last_execution_ended,
               s.last_success_ended, s.schedule_interval
        FROM sync_job_snapshots AS s LEFT JOIN {_APP_NAMES} AS n USING (service_principal_id)
        WHERE {SCOPE_FILTER}
        QUALIFY row_number() OVER (PARTITION BY s.job_id ORDER BY s.captured_at DESC) = 1
        ORDER BY n.service_principal_name, s.job_id"""),
    q("quarantine_periods", "Quarantine episodes per job from the job snapshots, and those only the directory audit "
      "log knows (source; ended NULL: still in it, or no end logged)", f"""
        SELECT p.job_id, p.service_principal_id, p.began, p.ended, p.reason, p.last_next_attempt, p.snapshots,
               p.source, coalesce(n.service_principal_name, p.app_name) AS service_principal_name
        FROM ({_ALL_QUARANTINE_PERIODS}) AS p
        LEFT JOIN {_APP_NAMES} AS n USING (service_principal_id)
        WHERE coalesce(p.ended, 'infinity'::TIMESTAMPTZ) >= {SINCE}
          AND p.began < {UNTIL}
        ORDER BY p.began, p.job_id"""),
    q("config_changes", "Provisioning configuration changes from the directory audit log (mapping or scope edits, "
      "restarts, settings and credential updates): when, what, who", f"""
        SELECT d.activity_time, d.activity_display_name AS activity, {_CONFIG_KIND} AS kind,
               d.initiated_by_type, d.initiated_by_name, d.service_principal_id,
               coalesce(n.service_principal_name, d.service_principal_name) AS service_principal_name, d.job_id,
               d.result, d.id
        FROM directory_audits AS d LEFT JOIN {_APP_NAMES} AS n USING (service_principal_id)
        WHERE lower(d.activity_display_name) IN ({_CONFIG_NAMES})
          AND {time_filter("d.activity_time")} AND {scope_filter("d")}
        ORDER BY d.activity_time, d.id"""),
    q("config_changes_recent", "The $limit latest provisioning configuration changes (the config_changes rows)", f"""
        SELECT d.activity_time, d.activity_display_name AS activity, {_CONFIG_KIND} AS kind, d.initiated_by_name,
               coalesce(n.service_principal_name, d.service_principal_name) AS service_principal_name
        FROM directory_audits AS d LEFT JOIN {_APP_NAMES} AS n USING (service_principal_id)
        WHERE lower(d.activity_display_name) IN ({_CONFIG_NAMES})
          AND {time_filter("d.activity_time")} AND {scope_filter("d")}
        ORDER BY d.activity_time DESC, d.id DESC LIMIT $limit"""),
    q("missed_cycles", "Job runs that came more than 1.5 x the 40-minute cadence after the previous run, "
      "outside quarantine (from the job snapshots: Entra logs nothing for a run with no changes)", f"""
        WITH runs AS (
            SELECT job_id, any_value(service_principal_id) AS service_principal_id,
                   last_execution_began AS began, bool_or(status_code = 'Quarantine') AS quarantined
            FROM sync_job_snapshots WHERE last_execution_began IS NOT NULL AND {SCOPE_FILTER}
            GROUP BY job_id, last_execution_began),
        gaps AS (
            SELECT *, lag(began) OVER w AS previous_began, lag(quarantined) OVER w AS previous_quarantined
            FROM runs WINDOW w AS (PARTITION BY job_id ORDER BY began))
        SELECT g.job_id, g.service_principal_id, n.service_principal_name,
               g.previous_began + INTERVAL {CYCLE_MINUTES} MINUTE AS expected_at,
               g.previous_began, g.began AS next_began,
               round((epoch(g.began) - epoch(g.previous_began)) / 60.0, 1) AS gap_minutes,
               greatest(round((epoch(g.began) - epoch(g.previous_began)) / 60.0 / {CYCLE_MINUTES})::INTEGER - 1, 1)
                   AS cycles_missed
        FROM gaps AS g LEFT JOIN {_APP_NAMES} AS n USING (service_principal_id)
        WHERE (epoch(g.began) - epoch(g.previous_began)) / 60.0 > {MISSED_AFTER_MINUTES}
          AND NOT g.quarantined AND NOT g.previous_quarantined
          AND g.began >= {SINCE}
          AND g.previous_began < {UNTIL}
        ORDER BY expected_at"""),
    q("success_rate_per_day", "Success rate per UTC day (success / (success + failure))", f"""
        SELECT {DAY_OF_HOUR} AS day,
               coalesce(sum(events) FILTER (WHERE status = 'success'), 0)::BIGINT AS success,
               coalesce(sum(events) FILTER (WHERE status = 'failure'), 0)::BIGINT AS failure,
               coalesce(sum(events) FILTER (WHERE status = 'success'), 0)::DOUBLE
                   / nullif(sum(events) FILTER (WHERE status IN ('success', 'failure')), 0) AS success_rate
        FROM {EVENT_COUNTS} AS c
        GROUP BY ALL ORDER BY day"""),
    q("action_status_counts", "Events per action and status in the period", f"""
        SELECT action, status, sum(events)::BIGINT AS events FROM {EVENT_COUNTS} AS c
        GROUP BY ALL ORDER BY action, status"""),
    q("cycle_events", "The events of one sync cycle ($cycle_id)", """
        SELECT activity_time, action, status, source_upn, user_name, error_code, scim_type, skip_category,
               target_id, source_id, id
        FROM events WHERE cycle_id = $cycle_id::VARCHAR AND {EVENT_FILTER}
        ORDER BY activity_time, id"""),
    q("failures_by_code_day", "Failures per UTC day and error code", f"""
        SELECT {DAY_OF_HOUR} AS day, coalesce(error_code, '(none)') AS error_code,
               sum(events)::BIGINT AS failures
        FROM {EVENT_COUNTS} AS c WHERE status = 'failure'
        GROUP BY ALL ORDER BY day, error_code"""),
    # All time: the store's per-identity skips (derived_skip_reasons, derived_skip_identities); a period, an app or a
    # job: the same aggregates over its skipped events.
    q("skips_by_category", "Skipped events by category and reason, with identities affected", f"""
        SELECT skip_category, skip_reason, sum(skips)::BIGINT AS skips, count(DISTINCT source_id) AS identities
        FROM (SELECT * FROM derived_skip_reasons WHERE {_UNFILTERED}
              UNION ALL
              {skip_reason_aggregate(f"events WHERE status = 'skipped' AND {EVENT_FILTER} AND NOT {_UNFILTERED}")})
        GROUP BY ALL ORDER BY skips DESC, skip_category, skip_reason"""),
    q("skips_by_category_day", "Skipped events per UTC day and category", f"""
        SELECT {DAY_OF_HOUR} AS day, coalesce(skip_category, 'other') AS skip_category,
               sum(events)::BIGINT AS skips
        FROM {EVENT_COUNTS} AS c WHERE status = 'skipped'
        GROUP BY ALL ORDER BY day, skip_category"""),
    q("skip_identities", "Identities to fix: who is skipped, why, since when, in how many cycles", f"""
        SELECT * FROM derived_skip_identities WHERE {_UNFILTERED}
        UNION ALL
        {skip_identity_aggregate(f"events WHERE status = 'skipped' AND {EVENT_FILTER} AND NOT {_UNFILTERED}")}
        ORDER BY skip_category, service_principal_name, source_upn, source_id"""),
    # From the store's per-identity names (derived_identity_names, ingest/summaries/events.py), whose rows group the
    # events by every column the match reads (plus app and job), so a row matches exactly when its events do. A group
    # whose events all lie inside the time window counts as a whole; a group across the window's edge is read from its
    # own events (only those: a semi-join on the group's key), and a group outside it not at all. Without a time window
    # (or when the window holds all of a group's events, as 30 days do for Graph's 30-day log) no event is read. The
    # aggregates combine to the same values as over the events (the latest UPN and display name by their own latest
    # times). The lists of userNames and target ids are sorted (string_agg(DISTINCT ...)'s order depended on the input's
    # order).
    q("identity_search", "Identities whose UPN, userName, object id or target id matches $term", f"""
        WITH named AS MATERIALIZED (
            SELECT * FROM derived_identity_names
            WHERE {SCOPE_FILTER} AND {TYPE_FILTER}
              AND (source_id = $term::VARCHAR OR target_id = $term::VARCHAR
                   OR contains(source_upn_lower, lower($term::VARCHAR))
                   OR contains(user_name_lower, lower($term::VARCHAR)))
              AND last_seen >= {SINCE} AND first_seen < {UNTIL}),
        parts AS (
            SELECT source_id, source_upn, last_seen AS upn_time, source_name, source_name_time, user_name,
                   target_id, events, first_seen, last_seen
            FROM named WHERE first_seen >= {SINCE} AND last_seen < {UNTIL}
            UNION ALL
            SELECT e.source_id, e.source_upn, e.activity_time, e.source_name, e.activity_time, e.user_name,
                   e.target_id, 1, e.activity_time, e.activity_time
            FROM events e
            SEMI JOIN (FROM named WHERE NOT (first_seen >= {SINCE} AND last_seen < {UNTIL})) k
              ON e.service_principal_id IS NOT DISTINCT FROM k.service_principal_id
             AND e.job_id IS NOT DISTINCT FROM k.job_id AND e.source_id IS NOT DISTINCT FROM k.source_id
             AND e.source_upn IS NOT DISTINCT FROM k.source_upn AND e.user_name IS NOT DISTINCT FROM k.user_name
             AND e.target_id IS NOT DISTINCT FROM k.target_id
            WHERE {_TIME_WINDOW} AND {{EVENT_FILTER}})
        SELECT source_id, arg_max(source_upn, upn_time) AS source_upn,
               arg_max(source_name, source_name_time) AS source_name,
               {_sorted_distinct('user_name')} AS user_names,
               {_sorted_distinct('target_id')} AS target_ids,
               sum(events)::BIGINT AS events, min(first_seen) AS first_seen, max(last_seen) AS last_seen
        FROM parts
        GROUP BY source_id ORDER BY last_seen DESC, source_id LIMIT 50"""),
    # From derived_identity_events (ingest/summaries/events.py): the events' columns shown here, sorted by source id, so
    # zone maps find the identity's rows in one row group (in the time-ordered events table they lie in every one).
    q("identity_events", "Everything Entra logged about one identity ($source_id), oldest first", """
        SELECT activity_time AS time, 'entra' AS source, service_principal_name AS app, action, status,
               coalesce(error_code, skip_category) AS detail, user_name, target_id, cycle_id, id AS ref
        FROM derived_identity_events
        WHERE source_id = $source_id::VARCHAR AND {EVENT_FILTER}
        ORDER BY activity_time, id"""),
]
QUERY_LIST += _wrapping_queries()


def _bounded_queries(defined: list) -> list:
    """What a page table shows of a big row set: the rows a person reads first, at most $limit of them,
    and the cheap total the caption states. Each wraps the full query's own SQL (the export datasets, or
    a page query above), so the rows are the same rows; the full list stays the export's job."""
    sql = {query.name: _unordered(query.sql) for query in defined}
    failures, recurring = _unordered(_dataset_sql("failures")), _unordered(_dataset_sql("recurring-failures"))
    cycle_events, skip_identities = sql["cycle_events"], sql["skip_identities"]
    stored_top = f"({_UNFILTERED} AND $limit::BIGINT <= {SKIP_TOP_ROWS})"
    return [
        # The time of the $limit-th newest failure first (a top-N over one narrow column), then the rows at or after it.
        q("failures_recent", "The newest $limit failures (the failures dataset, newest first)", f"""
            WITH edge AS (SELECT min(activity_time) AS t FROM (
                SELECT activity_time FROM ({failures}) ORDER BY activity_time DESC LIMIT $limit))
            SELECT f.* FROM ({failures}) AS f, edge WHERE f.activity_time >= edge.t
            ORDER BY activity_time DESC, id DESC LIMIT $limit"""),
        q("cycle_events_first", "The first $limit events of one sync cycle ($cycle_id), oldest first", f"""
            SELECT * FROM ({cycle_events}) AS e ORDER BY activity_time, id LIMIT $limit"""),
        q("recurring_failures_top", "The $limit identities failing in the most consecutive cycles", f"""
            SELECT * FROM ({recurring}) AS r
            ORDER BY consecutive_cycles DESC, last_failure DESC, service_principal_id, job_id, source_id
            LIMIT $limit"""),
        q("recurring_failures_count", "How many identities still fail in consecutive cycles", f"""
            SELECT count(*) AS identities FROM ({recurring}) AS r"""),
        # A top-N aggregate per category (min_by keeps $limit rows in a heap) instead of numbering every identity
        # with a window, whose sort of all rows took ~60 ms at 5M events; the key orders like the window's ORDER BY
        # (cycles and last_seen are never NULL). All time, up to the store's rows per category: derived_skip_top.
        q("skip_identities_top", "Per skip category, the $limit identities skipped in the most cycles, and "
          "how many identities the category has (category_identities)", f"""
            SELECT * EXCLUDE (rank) FROM (
                SELECT * FROM derived_skip_top WHERE {stored_top} AND rank <= $limit
                UNION ALL
                {skip_top(f"(SELECT * FROM ({skip_identities}) WHERE NOT {stored_top})", "$limit")})
            ORDER BY skip_category, cycles DESC, last_seen DESC, source_id, service_principal_id"""),
    ]


QUERY_LIST += _bounded_queries(QUERY_LIST)
