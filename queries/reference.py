"""Reference queries: the spec of every number the pages and exports show, written plainly over the source
tables (``events``, ``scim_requests``, ``correlation``) and never over a summary (``derived_*``).

Each entry answers exactly what the named query of the same name answers, for the same parameters ($since,
$until, $sps, $job and the query's own), in the same columns. They are slow on purpose: correlated
subqueries and plain GROUP BYs that a reader can check by eye. ``tests/test_reference_oracle.py`` holds every
named query equal to its reference on stores built several ways and under several filters; a named query
that reads a summary table is correct only while that test passes.

Shared vocabulary (not summaries): the filter fragments of :mod:`queries.filters`, our advice text
(``RECOMMENDED_ACTION_SQL``) and the violation kinds (``VIOLATION_KIND_SQL``), which are rules of the product.
"""

from __future__ import annotations

from ingest.audit_sql import CONFIG_ACTIVITIES, QUARANTINE_CLEARING, RELEASE_WORDS
from ingest.skip_reasons import CATEGORIES
from ingest.summaries.events import RECOMMENDED_ACTION_SQL, VIOLATION_KIND_SQL
from queries.filters import EVENT_FILTER, SCOPE_FILTER, SINCE, TYPE_FILTER, UNTIL, scope_filter, time_filter
from queries.scim import correlation_filter, scim_time
from queries.timeseries import references as timeseries_references

SCOPE = SCOPE_FILTER
# The same identity as ``o`` (an app, a job and a source object; events without a source id or app belong to none).
SAME_IDENTITY = ("{a}.source_id = {b}.source_id AND {a}.service_principal_id = {b}.service_principal_id "
                 "AND {a}.job_id IS NOT DISTINCT FROM {b}.job_id")
DAY = "make_timestamptz(epoch_us({col}) // 86400000000 * 86400000000)"  # the UTC day of a TIMESTAMPTZ

_EVENT_EXPORT = ("id, activity_time, tenant_id, job_id, cycle_id, change_id, service_principal_id, "
                 "service_principal_name, action, status, error_code, error_category, error_reason, source_id, "
                 "source_name, source_upn, target_id, user_name, duration_ms, source_type, target_type")

# What to do per skip category, spelled from the table itself (ingest/skip_reasons.py).
_SKIP_ADVICE = ("CASE skip_category " + " ".join(
    "WHEN '{}' THEN '{}'".format(c, advice.replace("'", "''")) for c, (_, advice) in CATEGORIES.items()) + " END")

# Every failure with its run: the identity's failures since its latest success before it (by time, then id),
# up to and including it; consecutive_cycles counts their distinct cycles. A failure without a source id or
# app is its own identity of one (NULL never equals NULL): its run is the failures with the same NULL keys.
# In two steps (the latest success before each failure, then the failures after it), so that no subquery reads a
# column two levels out: Spark runs the same text (queries/lake_sql.py).
_FAILURES = f"""
failures_after AS (
    SELECT e.*, (
        SELECT max((s.activity_time, s.id)) FROM events s
        WHERE s.status = 'success'
          AND s.source_id IS NOT DISTINCT FROM e.source_id
          AND s.service_principal_id IS NOT DISTINCT FROM e.service_principal_id
          AND s.job_id IS NOT DISTINCT FROM e.job_id
          AND (s.activity_time, s.id) < (e.activity_time, e.id)
        ) AS latest_success
    FROM events e WHERE e.status = 'failure'),
failures_all AS (
    SELECT e.*, (
        SELECT count(DISTINCT g.cycle_id) FROM events g
        WHERE g.status = 'failure'
          AND g.source_id IS NOT DISTINCT FROM e.source_id
          AND g.service_principal_id IS NOT DISTINCT FROM e.service_principal_id
          AND g.job_id IS NOT DISTINCT FROM e.job_id
          AND (g.activity_time, g.id) <= (e.activity_time, e.id)
          AND (e.latest_success IS NULL OR (g.activity_time, g.id) > e.latest_success)
        ) AS consecutive_cycles,
        {RECOMMENDED_ACTION_SQL} AS advice
    FROM failures_after e)"""

# Per identity (source id, app, job), the latest success before $until.
_LAST_SUCCESS = f"""
last_success AS (
    SELECT source_id, service_principal_id, job_id, max(activity_time) AS t FROM events
    WHERE status = 'success' AND activity_time < {UNTIL} GROUP BY ALL)"""

# Identities still failing at $until: their failures after their latest success before $until.
_OPEN_RUNS = f"""
open_failures AS (
    SELECT f.* FROM (SELECT * FROM events WHERE status = 'failure' AND {SCOPE} AND {TYPE_FILTER}) f
    LEFT JOIN last_success s ON {SAME_IDENTITY.format(a='s', b='f')}
    WHERE f.source_id IS NOT NULL AND f.service_principal_id IS NOT NULL
      AND f.activity_time < {UNTIL} AND (s.t IS NULL OR f.activity_time > s.t)),
open_runs AS (
    SELECT service_principal_id, job_id, source_id,
           arg_max(source_upn, (activity_time, id)) AS source_upn, arg_max(user_name, (activity_time, id)) AS user_name,
           count(DISTINCT cycle_id) AS consecutive_cycles, min(activity_time) AS failing_since,
           max(activity_time) AS last_failure, arg_max(error_code, (activity_time, id)) AS error_code,
           arg_max(id, (activity_time, id)) AS last_id
    FROM open_failures GROUP BY ALL
    HAVING max(activity_time) >= {SINCE})"""

# The default allowed email domains: UPN domains of successful events and email domains of successful creates.
_WORK_DOMAINS = """
work_domains AS (
    SELECT lower(split_part(source_upn, '@', -1)) AS domain FROM events
    WHERE status = 'success' AND source_upn LIKE '%@%'
    UNION
    SELECT email_domain FROM events WHERE status = 'success' AND action = 'create' AND email_domain IS NOT NULL)"""

# Violations (Entra evidence): failures in the period by kind, per identity; resolved when the identity has a
# success after the group's last failure and before $until.
_VIOLATIONS = f"""
{_WORK_DOMAINS},
allowed AS (
    SELECT unnest($allowed_domains::VARCHAR[]) AS domain WHERE $allowed_domains::VARCHAR[] IS NOT NULL
    UNION ALL SELECT domain FROM work_domains WHERE $allowed_domains::VARCHAR[] IS NULL),
classified AS (
    SELECT e.*, {VIOLATION_KIND_SQL.format(allowed='allowed')} AS kind
    FROM events e WHERE e.status = 'failure' AND {EVENT_FILTER}),
grouped AS (
    SELECT kind, service_principal_id, job_id, source_id, arg_max(user_name, activity_time) AS user_name,
           arg_max(email_domain, activity_time) FILTER (WHERE email_domain IS NOT NULL) AS email_domain,
           min(activity_time) AS first_seen, max(activity_time) AS last_seen, count(*) AS occurrences,
           arg_max(source_name, activity_time) AS source_name, arg_max(source_type, activity_time) AS source_type,
           arg_max(target_type, activity_time) AS target_type
    FROM classified WHERE kind IS NOT NULL GROUP BY ALL),
judged AS (
    SELECT g.*, (SELECT min(s.activity_time) FROM events s
                 WHERE s.status = 'success' AND {SAME_IDENTITY.format(a='s', b='g')}
                   AND s.activity_time > g.last_seen AND s.activity_time < {UNTIL}) AS resolved_at
    FROM grouped g)"""

_CYCLES = f"""
per_cycle AS (
    SELECT job_id, cycle_id, any_value(service_principal_id) AS service_principal_id,
           min(activity_time) AS started_at, max(activity_time) AS ended_at, count(*) AS events,
           count(*) FILTER (WHERE action = 'create') AS created, count(*) FILTER (WHERE action = 'update') AS updated,
           count(*) FILTER (WHERE action = 'disable') AS disabled,
           count(*) FILTER (WHERE action = 'delete') AS deleted,
           count(*) FILTER (WHERE action IS NULL OR action NOT IN ('create', 'update', 'disable', 'delete')) AS other,
           count(*) FILTER (WHERE status = 'success') AS success, count(*) FILTER (WHERE status = 'failure') AS failure,
           count(*) FILTER (WHERE status = 'skipped') AS skipped, count(*) FILTER (WHERE status = 'warning') AS warning,
           bool_or(import_kind = 'full') AS full_import
    FROM events WHERE {SCOPE} GROUP BY job_id, cycle_id),
cycles_all AS (
    SELECT c.*, (SELECT max(p.started_at) FROM per_cycle p WHERE p.job_id IS NOT DISTINCT FROM c.job_id
                 AND (p.started_at, p.cycle_id) < (c.started_at, c.cycle_id)) AS previous_start
    FROM per_cycle c),
cycles AS (
    SELECT job_id, cycle_id, service_principal_id, started_at, ended_at,
           round(epoch(ended_at) - epoch(started_at), 3) AS duration_s, events, created, updated, disabled, deleted,
           other, success, failure, skipped, warning,
           CASE WHEN previous_start IS NULL OR coalesce(full_import, false) THEN 'initial' ELSE 'incremental' END
               AS kind,
           round((epoch(started_at) - epoch(previous_start)) / 60.0, 1) AS gap_before_min
    FROM cycles_all WHERE started_at >= {SINCE} AND started_at < {UNTIL})"""

_APP_NAMES = """
app_names AS (SELECT service_principal_id, any_value(service_principal_name) AS service_principal_name
              FROM events GROUP BY service_principal_id)"""

_SKIP_IDENTITIES = f"""
SELECT source_id, service_principal_id, any_value(service_principal_name) AS service_principal_name,
       arg_max(source_upn, activity_time) AS source_upn, coalesce(skip_category, 'other') AS skip_category,
       arg_max(skip_reason, activity_time) AS skip_reason, min(activity_time) AS first_seen,
       max(activity_time) AS last_seen, count(DISTINCT cycle_id) AS cycles, count(*) AS skips
FROM events WHERE status = 'skipped' AND {EVENT_FILTER}
GROUP BY source_id, service_principal_id, coalesce(skip_category, 'other')"""

# The event filters, plainly: each list as an IN over its values, the identity as upper-case equality with any of
# the four identity columns.
def _detail(skip: bool = True) -> str:
    parts = [f"(${p}::VARCHAR[] IS NULL OR {c} IN (SELECT unnest(${p}::VARCHAR[])))"
             for p, c in (("statuses", "status"), ("actions", "action"), ("codes", "error_code"))]
    if skip:
        parts.append("($skips::VARCHAR[] IS NULL OR skip_category IN (SELECT unnest($skips::VARCHAR[])))")
    parts += ["($who::VARCHAR IS NULL OR upper($who::VARCHAR) IN (upper(source_upn), upper(user_name), "
              "upper(source_id), upper(target_id)))",
              "($cycle::VARCHAR IS NULL OR cycle_id = $cycle::VARCHAR)",
              "($change::VARCHAR IS NULL OR change_id = $change::VARCHAR)"]
    return " AND ".join(parts)


_DETAIL, _DETAIL_NO_SKIP = _detail(), _detail(skip=False)

_TOP_ERRORS = f"""
SELECT error_code, count(*) AS failures, count(DISTINCT source_id) AS identities, min(activity_time) AS first_seen,
       max(activity_time) AS last_seen, mode(http_status) AS http_status, mode(scim_type) AS scim_type,
       mode(scim_detail) AS scim_detail, max(next_retry_at) AS next_retry_at, mode(advice) AS recommended_action
FROM (SELECT *, {RECOMMENDED_ACTION_SQL} AS advice FROM events e WHERE status = 'failure' AND {EVENT_FILTER}
      AND {_DETAIL_NO_SKIP})
GROUP BY error_code"""


# Quarantine periods (issue 24), plainly. From the snapshots: a snapshot in quarantine whose previous snapshot of the
# job is not starts a period; it ends at the job's first later snapshot not in quarantine. From the directory audit
# log: a Quarantine entry (not one saying the job was released) starts a period when no earlier one of the job (or
# app) is still open, i.e. none without a restart (or release) between them and it; the period ends at the first such
# entry after it, the job's first snapshot after its start not in quarantine, or the start of its first cycle after
# it with a successful event, whichever comes first. An
# audit-log period is listed only when no snapshot period of the same job overlaps it.
_AUDIT_ROWS = f"""
    SELECT *, coalesce(job_id, service_principal_id) AS job_key,
           lower(activity_display_name) = 'quarantine'
               AND NOT regexp_matches(coalesce(result_reason, ''), '{RELEASE_WORDS}') AS enters
    FROM directory_audits
    WHERE (lower(activity_display_name) = 'quarantine'
           OR lower(activity_display_name) IN ({", ".join(f"'{a}'" for a in QUARANTINE_CLEARING)}))
      AND coalesce(job_id, service_principal_id) IS NOT NULL"""

_IN_PERIOD = "m.captured_at >= st.captured_at AND m.captured_at < coalesce(st.ended, 'infinity'::TIMESTAMPTZ)"
_QUARANTINE = f"""
snap_rows AS (SELECT * FROM sync_job_snapshots WHERE {SCOPE}),
snap_starts AS (
    SELECT s.*, (SELECT min(x.captured_at) FROM snap_rows x WHERE x.job_id = s.job_id
                 AND x.captured_at > s.captured_at AND x.status_code <> 'Quarantine') AS ended
    FROM snap_rows s
    WHERE s.status_code = 'Quarantine'
      AND NOT coalesce((SELECT p.status_code = 'Quarantine' FROM snap_rows p
                        WHERE p.job_id = s.job_id AND p.captured_at < s.captured_at
                        ORDER BY p.captured_at DESC LIMIT 1), false)),
snap AS (
    SELECT st.job_id, st.service_principal_id,
           coalesce((SELECT min(m.quarantine_since) FROM snap_rows m WHERE m.job_id = st.job_id
                     AND {_IN_PERIOD}),
                    st.captured_at) AS began,
           st.ended, st.quarantine_reason AS reason,
           (SELECT m.quarantine_next_attempt FROM snap_rows m WHERE m.job_id = st.job_id
            AND {_IN_PERIOD} ORDER BY m.captured_at DESC LIMIT 1) AS last_next_attempt,
           (SELECT count(*) FROM snap_rows m WHERE m.job_id = st.job_id AND {_IN_PERIOD}) AS snapshots
    FROM snap_starts st),
audit_rows AS ({_AUDIT_ROWS}),
audit_starts AS (
    SELECT e.* FROM audit_rows e
    WHERE e.enters AND NOT EXISTS (
        SELECT 1 FROM audit_rows e2
        WHERE e2.job_key = e.job_key AND e2.enters
          AND (e2.activity_time < e.activity_time OR (e2.activity_time = e.activity_time AND e2.id < e.id))
          AND NOT EXISTS (SELECT 1 FROM audit_rows c WHERE c.job_key = e.job_key AND NOT c.enters
                          AND c.activity_time > e2.activity_time AND c.activity_time <= e.activity_time))),
audit AS (
    SELECT s.job_id, s.service_principal_id, s.activity_time AS began,
           least((SELECT min(c.activity_time) FROM audit_rows c WHERE c.job_key = s.job_key AND NOT c.enters
                  AND c.activity_time > s.activity_time),
                 (SELECT min(x.captured_at) FROM sync_job_snapshots x
                  WHERE (x.job_id = s.job_id OR (s.job_id IS NULL AND x.service_principal_id = s.service_principal_id))
                    AND x.captured_at > s.activity_time AND x.status_code <> 'Quarantine'),
                 (SELECT min(c.started) FROM (SELECT job_id, service_principal_id, min(activity_time) AS started,
                                                     count(*) FILTER (WHERE status = 'success') AS successes
                                              FROM events GROUP BY job_id, cycle_id, service_principal_id) c
                  WHERE (c.job_id = s.job_id OR (s.job_id IS NULL AND c.service_principal_id = s.service_principal_id))
                    AND c.started > s.activity_time AND c.successes > 0)) AS ended,
           coalesce(s.result_reason, '') AS reason, s.service_principal_name AS app_name
    FROM audit_starts s),
periods AS (
    SELECT job_id, service_principal_id, began, ended, reason, last_next_attempt, snapshots,
           'job snapshots' AS source, NULL AS app_name FROM snap
    UNION ALL
    SELECT a.job_id, a.service_principal_id, a.began, a.ended, a.reason, NULL, 0, 'audit log', a.app_name
    FROM audit a
    WHERE {SCOPE.replace("service_principal_id", "a.service_principal_id").replace("job_id", "a.job_id")}
      AND NOT EXISTS (SELECT 1 FROM snap s WHERE (s.job_id = a.job_id OR (a.job_id IS NULL
                                                  AND s.service_principal_id = a.service_principal_id))
                      AND s.began < coalesce(a.ended, 'infinity'::TIMESTAMPTZ)
                      AND coalesce(s.ended, 'infinity'::TIMESTAMPTZ) > a.began))"""

_CONFIG_KIND = "CASE lower(d.activity_display_name) " + " ".join(
    f"WHEN '{a}' THEN '{k}'" for a, k in CONFIG_ACTIVITIES.items()) + " END"
_CONFIG = f"""
SELECT d.*, {_CONFIG_KIND} AS kind, coalesce(n.service_principal_name, d.service_principal_name) AS app
FROM directory_audits d LEFT JOIN app_names n ON n.service_principal_id = d.service_principal_id
WHERE {_CONFIG_KIND} IS NOT NULL AND {time_filter("d.activity_time")} AND {scope_filter("d")}"""


REFERENCES: dict[str, str] = {
    "failures": f"""WITH {_FAILURES}
        SELECT {_EVENT_EXPORT}, http_status, scim_type, scim_detail, next_retry_at, consecutive_cycles,
               advice AS recommended_action
        FROM failures_all WHERE {EVENT_FILTER} AND {_DETAIL_NO_SKIP} ORDER BY activity_time, id""",
    "failures_recent": f"""WITH {_FAILURES}
        SELECT {_EVENT_EXPORT}, http_status, scim_type, scim_detail, next_retry_at, consecutive_cycles,
               advice AS recommended_action
        FROM failures_all WHERE {EVENT_FILTER} AND {_DETAIL_NO_SKIP}
        ORDER BY activity_time DESC, id DESC LIMIT $limit""",
    # The Events page and the events dataset: every filter, plainly.
    "events": f"""SELECT {_EVENT_EXPORT} FROM events WHERE {EVENT_FILTER} AND {_DETAIL} ORDER BY activity_time, id""",
    "events_recent": f"""
        SELECT '/event?id=' || url_encode(id) AS event, activity_time, status, action, source_upn, user_name,
               source_type, error_code, skip_category, service_principal_name, cycle_id, change_id, job_id,
               source_id, target_id, id
        FROM events WHERE {EVENT_FILTER} AND {_DETAIL} ORDER BY activity_time DESC, id DESC LIMIT $limit""",
    "events_count": f"SELECT count(*) AS events FROM events WHERE {EVENT_FILTER} AND {_DETAIL}",
    "recurring-failures": f"""WITH {_LAST_SUCCESS}, {_OPEN_RUNS}
        SELECT r.service_principal_id, r.job_id, r.source_id, r.source_upn, r.user_name, r.consecutive_cycles,
               r.failing_since, r.last_failure, r.error_code,
               (SELECT {RECOMMENDED_ACTION_SQL} FROM events e WHERE e.id = r.last_id) AS recommended_action
        FROM open_runs r WHERE r.consecutive_cycles >= 2
        ORDER BY consecutive_cycles DESC, last_failure DESC, service_principal_id, job_id, source_id""",
    "recurring_failures_count": f"""WITH {_LAST_SUCCESS}, {_OPEN_RUNS}
        SELECT count(*) AS identities FROM open_runs WHERE consecutive_cycles >= 2""",
    "overview_kpis": f"""WITH {_LAST_SUCCESS}, {_OPEN_RUNS},
        period AS (SELECT * FROM events WHERE {EVENT_FILTER})
        SELECT count(*) AS events, count(*) FILTER (WHERE status = 'success') AS success,
               count(*) FILTER (WHERE status = 'failure') AS failure,
               count(*) FILTER (WHERE status = 'skipped') AS skipped,
               count(*) FILTER (WHERE status = 'warning') AS warning,
               count(DISTINCT source_id) AS identities,
               count(DISTINCT source_id) FILTER (WHERE status = 'failure') AS failed_identities,
               (SELECT count(DISTINCT source_id) FROM open_runs) AS failing_identities,
               count(DISTINCT (job_id, cycle_id)) AS cycles,
               count(*) FILTER (WHERE status = 'success')::DOUBLE
                   / nullif(count(*) FILTER (WHERE status IN ('success', 'failure')), 0) AS success_rate,
               min(activity_time) AS first_event, max(activity_time) AS last_event
        FROM period""",
    "events_per_day_by_status": f"""
        SELECT {DAY.format(col='activity_time')} AS day, status, count(*) AS events
        FROM events WHERE {EVENT_FILTER} GROUP BY ALL ORDER BY day, status""",
    "success_rate_per_day": f"""
        SELECT {DAY.format(col='activity_time')} AS day, count(*) FILTER (WHERE status = 'success') AS success,
               count(*) FILTER (WHERE status = 'failure') AS failure,
               count(*) FILTER (WHERE status = 'success')::DOUBLE
                   / nullif(count(*) FILTER (WHERE status IN ('success', 'failure')), 0) AS success_rate
        FROM events WHERE {EVENT_FILTER} GROUP BY ALL ORDER BY day""",
    "action_status_counts": f"""
        SELECT action, status, count(*) AS events FROM events WHERE {EVENT_FILTER}
        GROUP BY ALL ORDER BY action, status""",
    "failures_by_code_day": f"""
        SELECT {DAY.format(col='activity_time')} AS day, coalesce(error_code, '(none)') AS error_code,
               count(*) AS failures
        FROM events WHERE status = 'failure' AND {EVENT_FILTER} GROUP BY ALL ORDER BY day, error_code""",
    "skips_by_category_day": f"""
        SELECT {DAY.format(col='activity_time')} AS day, coalesce(skip_category, 'other') AS skip_category,
               count(*) AS skips
        FROM events WHERE status = 'skipped' AND {EVENT_FILTER} GROUP BY ALL ORDER BY day, skip_category""",
    "top_errors": _TOP_ERRORS + " ORDER BY failures DESC, error_code",
    "top_error_codes": f"""
        SELECT error_code, failures, identities, first_seen, last_seen, http_status, scim_type
        FROM ({_TOP_ERRORS}) ORDER BY failures DESC, error_code LIMIT $limit""",
    "skip_identities": _SKIP_IDENTITIES + " ORDER BY skip_category, service_principal_name, source_upn, source_id",
    "skips_by_category": f"""
        SELECT coalesce(skip_category, 'other') AS skip_category, coalesce(skip_reason, '') AS skip_reason,
               count(*) AS skips, count(DISTINCT source_id) AS identities
        FROM events WHERE status = 'skipped' AND {EVENT_FILTER}
        GROUP BY ALL ORDER BY skips DESC, skip_category, skip_reason""",
    "skip_identities_top": f"""
        SELECT *, count(*) OVER (PARTITION BY skip_category) AS category_identities FROM ({_SKIP_IDENTITIES})
        QUALIFY row_number() OVER (PARTITION BY skip_category
                                   ORDER BY cycles DESC, last_seen DESC, source_id, service_principal_id) <= $limit
        ORDER BY skip_category, cycles DESC, last_seen DESC, source_id, service_principal_id""",
    "skipped": f"""SELECT {_EVENT_EXPORT}, skip_reason, skip_category, skip_detail,
               {_SKIP_ADVICE} AS recommended_action FROM events
        WHERE status = 'skipped' AND {EVENT_FILTER} AND {_DETAIL} ORDER BY activity_time, id""",
    "cycles": f"WITH {_CYCLES} SELECT * FROM cycles ORDER BY started_at, job_id, cycle_id",
    "cycles_timeline": f"""WITH {_CYCLES}, {_APP_NAMES}
        SELECT c.*, n.service_principal_name FROM cycles c LEFT JOIN app_names n USING (service_principal_id)
        ORDER BY c.started_at, c.cycle_id""",
    "cycle_events": f"""
        SELECT activity_time, action, status, source_upn, user_name, error_code, scim_type, skip_category,
               target_id, source_id, id
        FROM events WHERE cycle_id = $cycle_id::VARCHAR AND {EVENT_FILTER} ORDER BY activity_time, id""",
    "cycle_events_first": f"""
        SELECT activity_time, action, status, source_upn, user_name, error_code, scim_type, skip_category,
               target_id, source_id, id
        FROM events WHERE cycle_id = $cycle_id::VARCHAR AND {EVENT_FILTER} ORDER BY activity_time, id LIMIT $limit""",
    "violations_summary": f"""WITH {_VIOLATIONS}
        SELECT kind, CASE WHEN resolved_at IS NULL THEN 'open' ELSE 'resolved' END AS state, count(*) AS violations
        FROM judged GROUP BY ALL ORDER BY kind, state""",
    # SCIM evidence: a 409 (duplicate) or 400 (rejected value) for the identity's externalId or userName
    # (case-insensitive) within 15 minutes of the group's failures.
    "violations": f"""WITH {_VIOLATIONS}
        SELECT kind, user_name, email_domain, source_id, service_principal_id, first_seen, last_seen, occurrences,
               CASE WHEN resolved_at IS NULL THEN 'open' ELSE 'resolved' END AS state, resolved_at,
               CASE WHEN EXISTS (
                   SELECT 1 FROM scim_requests r
                   WHERE r.status = CASE WHEN j.kind LIKE 'duplicate%' THEN 409 ELSE 400 END
                     AND (r.external_id = j.source_id OR lower(r.user_name) = lower(j.user_name))
                     AND r.ts BETWEEN j.first_seen - INTERVAL 15 MINUTE AND j.last_seen + INTERVAL 15 MINUTE)
                    THEN 'both' ELSE 'entra' END AS evidence, source_name, source_type, target_type
        FROM judged j ORDER BY first_seen, kind, service_principal_id, source_id""",
    "identity_events": f"""
        SELECT activity_time AS time, 'entra' AS source, service_principal_name AS app, action, status,
               coalesce(error_code, skip_category) AS detail, user_name, target_id, cycle_id, id AS ref
        FROM events WHERE source_id = $source_id::VARCHAR AND {EVENT_FILTER} ORDER BY activity_time, id""",
    "identity_search": f"""
        SELECT source_id, arg_max(source_upn, activity_time) AS source_upn,
               arg_max(source_name, activity_time) AS source_name,
               nullif(array_to_string(list_sort(list_distinct(list(user_name))), ', '), '') AS user_names,
               nullif(array_to_string(list_sort(list_distinct(list(target_id))), ', '), '') AS target_ids,
               count(*) AS events, min(activity_time) AS first_seen, max(activity_time) AS last_seen
        FROM events
        WHERE {EVENT_FILTER} AND (source_id = $term::VARCHAR OR target_id = $term::VARCHAR
              OR contains(lower(source_upn), lower($term::VARCHAR))
              OR contains(lower(user_name), lower($term::VARCHAR)))
        GROUP BY source_id ORDER BY last_seen DESC, source_id LIMIT 50""",
    "newest_cycle_end": """
        SELECT max(least(ended, $until::TIMESTAMPTZ)) AS newest
        FROM (SELECT min(activity_time) AS started, max(activity_time) AS ended FROM events
              GROUP BY job_id, cycle_id, service_principal_id)
        WHERE started < $until::TIMESTAMPTZ""",
    "quarantine_periods": f"""WITH {_QUARANTINE}, {_APP_NAMES}
        SELECT p.job_id, p.service_principal_id, p.began, p.ended, p.reason, p.last_next_attempt, p.snapshots,
               p.source, coalesce(n.service_principal_name, p.app_name) AS service_principal_name
        FROM periods p LEFT JOIN app_names n ON n.service_principal_id = p.service_principal_id
        WHERE coalesce(p.ended, 'infinity'::TIMESTAMPTZ) >= {SINCE} AND p.began < {UNTIL}
        ORDER BY p.began, p.job_id""",
    "config_changes": f"""WITH {_APP_NAMES}
        SELECT activity_time, activity_display_name AS activity, kind, initiated_by_type, initiated_by_name,
               service_principal_id, app AS service_principal_name, job_id, result, id
        FROM ({_CONFIG}) ORDER BY activity_time, id""",
    "config_changes_recent": f"""WITH {_APP_NAMES}
        SELECT activity_time, activity_display_name AS activity, kind, initiated_by_name,
               app AS service_principal_name
        FROM ({_CONFIG}) ORDER BY activity_time DESC, id DESC LIMIT $limit""",
    "jobs": """
        SELECT job_id, any_value(service_principal_id) AS service_principal_id,
               any_value(service_principal_name) AS service_principal_name, count(*) AS events
        FROM events WHERE job_id IS NOT NULL GROUP BY job_id ORDER BY service_principal_name, job_id""",
    "service_principals": """
        SELECT service_principal_id, any_value(service_principal_name) AS service_principal_name, count(*) AS events,
               max(activity_time) AS last_event
        FROM events GROUP BY service_principal_id ORDER BY service_principal_name, service_principal_id""",
}

_SCIM_TIME, _CORR, _C, _R = scim_time(), correlation_filter(), correlation_filter("c"), scim_time("r")

# The SCIM audit page's questions, plainly over scim_requests, correlation and events.
SCIM_REFERENCES = {
    "scim_kpis": f"""
        SELECT count(*) AS requests, count(*) FILTER (WHERE status >= 400) AS errors,
               count(*) FILTER (WHERE status IN (401, 403)) AS auth_failures,
               count(*) FILTER (WHERE is_probe) AS probes, count(*) FILTER (WHERE status = 429) AS throttled,
               quantile_cont(duration_ms, 0.95) AS p95_ms,
               count(DISTINCT coalesce(credential_id, user_agent, client_ip)) AS clients,
               min(ts) AS first_request, max(ts) AS last_request
        FROM scim_requests WHERE {_SCIM_TIME}""",
    "scim_requests_over_time": f"""
        SELECT date_trunc(coalesce($bucket::VARCHAR, 'hour'), ts) AS bucket, operation, status,
               (status // 100)::VARCHAR || 'xx' AS status_class, count(*) AS requests
        FROM scim_requests WHERE {_SCIM_TIME} GROUP BY ALL ORDER BY bucket, operation, status""",
    "scim_latency": f"""
        SELECT operation, count(*) AS requests,
               quantile_cont(duration_ms, 0.5) AS p50_ms, quantile_cont(duration_ms, 0.95) AS p95_ms,
               quantile_cont(duration_ms, 0.99) AS p99_ms, max(duration_ms) AS max_ms
        FROM scim_requests WHERE duration_ms IS NOT NULL AND {_SCIM_TIME}
        GROUP BY operation ORDER BY requests DESC, operation""",
    "scim_errors_by_type": f"""
        SELECT status, coalesce(scim_type, '(none)') AS scim_type, count(*) AS requests,
               count(DISTINCT user_name_lower) AS user_names, mode(error_detail) AS example_detail,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM scim_requests WHERE status >= 400 AND {_SCIM_TIME}
        GROUP BY ALL ORDER BY requests DESC, status, scim_type""",
    "scim_auth_failures": f"""
        SELECT date_trunc('day', ts) AS day, status, credential_id, user_agent, client_ip, count(*) AS requests,
               min(ts) AS first_seen, max(ts) AS last_seen, mode(error_detail) AS example_detail
        FROM scim_requests WHERE status IN (401, 403) AND {_SCIM_TIME}
        GROUP BY ALL ORDER BY day, requests DESC""",
    "scim_probes": f"""
        SELECT date_trunc('day', ts) AS day, status, count(*) AS probes, tenant
        FROM scim_requests WHERE is_probe AND {_SCIM_TIME} GROUP BY ALL ORDER BY day, status, tenant""",
    "correlation_class_counts": f"""
        SELECT match_class, coalesce(detail, '') AS detail, bool_or(suspicious) AS suspicious, count(*) AS rows
        FROM correlation WHERE {_CORR} GROUP BY ALL ORDER BY match_class, detail""",
    "scim_unlogged_requests": f"""
        SELECT r.ts, r.request_id, c.detail, r.method, r.path, r.status, r.operation, r.user_name, r.resource_id,
               r.client_ip, r.user_agent, r.credential_id, r.tenant
        FROM correlation c JOIN scim_requests r ON r.request_id = c.request_id
        WHERE c.match_class = 'scim_only' AND c.detail <> 'probe' AND {_C}
        ORDER BY c.suspicious DESC, r.ts, r.request_id""",
    "correlation_contradictions": f"""
        SELECT c.event_time, c.detail, c.event_id, e.action, e.status AS event_status, e.error_code,
               c.request_id, r.method, r.path, r.status AS request_status, r.scim_type, r.error_detail,
               coalesce(r.user_name, e.user_name) AS user_name, c.service_principal_id
        FROM correlation c JOIN events e ON e.id = c.event_id JOIN scim_requests r ON r.request_id = c.request_id
        WHERE c.match_class = 'contradiction' AND {_C} ORDER BY c.event_time, c.event_id""",
    "scim_identity_timeline": f"""
        SELECT r.ts, r.request_id, r.method, r.path, r.status, r.operation, r.user_name, r.resource_id,
               r.external_id, r.scim_type, r.error_detail, c.match_class, c.detail, c.event_id
        FROM scim_requests r LEFT JOIN correlation c ON c.request_id = r.request_id
        WHERE (r.user_name_lower = lower($identity::VARCHAR) OR r.resource_id = $identity::VARCHAR
               OR r.external_id = $identity::VARCHAR) AND {_R}
        ORDER BY r.ts, r.request_id""",
    "identity_scim_requests": f"""
        WITH ev AS (SELECT id, target_id, lower(user_name) AS user_name_lower FROM events
                    WHERE source_id = $source_id::VARCHAR)
        SELECT r.ts AS time, 'scim' AS source, r.tenant AS app, r.operation AS action,
               CASE WHEN r.status >= 400 THEN 'failure' ELSE 'success' END AS status,
               r.method || ' ' || r.status::VARCHAR || coalesce(' ' || r.scim_type, '')
                   || coalesce(': ' || r.error_detail, '') AS detail,
               r.user_name, r.resource_id AS target_id, NULL::VARCHAR AS cycle_id, r.request_id AS ref
        FROM scim_requests r
        WHERE (r.external_id = $source_id::VARCHAR
               OR r.resource_id IN (SELECT target_id FROM ev WHERE target_id IS NOT NULL)
               OR r.user_name_lower IN (SELECT user_name_lower FROM ev WHERE user_name_lower IS NOT NULL)
               OR r.request_id IN (SELECT request_id FROM correlation
                                   WHERE event_id IN (SELECT id FROM ev) AND request_id IS NOT NULL))
          AND NOT r.is_probe AND {_R}
        ORDER BY r.ts, r.request_id""",
}


REFERENCES.update(SCIM_REFERENCES)
# The charts' binned series (queries/timeseries.py): their references live beside them.
REFERENCES.update(timeseries_references(REFERENCES["cycles_timeline"]))


# The Event page (queries/event.py): the one event by id, its steps and modified properties by JSON path (not by a
# parsed structure), the correlated SCIM requests by subqueries.
_STEP = "json_extract_string(raw, '$.provisioningSteps[' || (i - 1)::VARCHAR || '].{key}')"
_MOD = "json_extract_string(raw, '$.modifiedProperties[' || (i - 1)::VARCHAR || '].{key}')"
EVENT_REFERENCES = {
    "event_detail": f"""
        SELECT id, activity_time, status, action, error_code, error_category, error_reason, error_details,
               recommended_action AS entra_recommended_action,
               CASE WHEN status = 'skipped' THEN coalesce(nullif(recommended_action, ''), {_SKIP_ADVICE})
                    WHEN status IN ('failure', 'warning') THEN (SELECT {RECOMMENDED_ACTION_SQL} FROM events e
                                                                WHERE e.id = o.id)
                    ELSE nullif(recommended_action, '') END AS recommended_action,
               http_status, scim_type, scim_detail, retry_count, next_retry_at, skip_category, skip_reason,
               skip_detail, source_id, source_name, source_upn, source_type,
               json_extract_string(raw, '$.sourceSystem.displayName') AS source_system,
               target_id, target_name, target_type, json_extract_string(raw, '$.targetSystem.displayName')
                   AS target_system,
               user_name, email, tenant_id, service_principal_id, service_principal_name,
               CASE WHEN json_extract_string(raw, '$.targetSystem.details.ServicePrincipalId') = service_principal_id
                        THEN json_extract_string(raw, '$.targetSystem.details.ApplicationId')
                    WHEN json_extract_string(raw, '$.sourceSystem.details.ServicePrincipalId') = service_principal_id
                        THEN json_extract_string(raw, '$.sourceSystem.details.ApplicationId') END AS app_id,
               job_id, cycle_id, change_id, duration_ms, initiated_by,
               json_extract_string(raw, '$.initiatedBy.initiatorType') AS initiator_type, raw::VARCHAR AS raw
        FROM events o WHERE id = $event_id::VARCHAR""",
    "event_steps": f"""
        SELECT i AS step, {_STEP.format(key='provisioningStepType')} AS step_type, {_STEP.format(key='name')} AS name,
               {_STEP.format(key='status')} AS status, {_STEP.format(key='description')} AS description,
               json_extract(raw, '$.provisioningSteps[' || (i - 1)::VARCHAR || '].details')::VARCHAR AS details
        FROM events, range(1, 1000) AS t(i)
        WHERE id = $event_id::VARCHAR AND i <= coalesce(json_array_length(raw, '$.provisioningSteps'), 0)
        ORDER BY i""",
    "event_modified_properties": f"""
        SELECT i AS position, {_MOD.format(key='displayName')} AS property, {_MOD.format(key='oldValue')} AS old_value,
               {_MOD.format(key='newValue')} AS new_value
        FROM events, range(1, 1000) AS t(i)
        WHERE id = $event_id::VARCHAR AND i <= coalesce(json_array_length(raw, '$.modifiedProperties'), 0)
        ORDER BY i""",
    "event_scim_requests": """
        SELECT r.ts, r.method, r.path, r.status, r.operation, r.scim_type, r.error_detail, r.user_name,
               (SELECT any_value(match_class) FROM correlation c WHERE c.request_id = r.request_id
                  AND c.event_id = $event_id::VARCHAR) AS match_class,
               (SELECT any_value(detail) FROM correlation c WHERE c.request_id = r.request_id
                  AND c.event_id = $event_id::VARCHAR) AS detail,
               (SELECT any_value(delta_s) FROM correlation c WHERE c.request_id = r.request_id
                  AND c.event_id = $event_id::VARCHAR) AS delta_s, r.request_id
        FROM scim_requests r
        WHERE r.request_id IN (SELECT request_id FROM correlation WHERE event_id = $event_id::VARCHAR)
        ORDER BY r.ts, r.request_id""",
}
REFERENCES.update(EVENT_REFERENCES)

# What each summary table feeds, so the oracle covers every one (tests/test_reference_oracle.py checks the list).
SUMMARY_READERS: dict[str, tuple[str, ...]] = {
    "derived_failures": ("failures", "recurring-failures", "top_errors", "top_error_codes", "overview_kpis",
                         "violations_summary", "violations"),
    "derived_cycles": ("cycles", "cycles_timeline", "jobs", "service_principals", "overview_kpis", "newest_cycle_end",
                       "quarantine_periods", "config_changes", "config_changes_recent", "cycles_over_time"),
    "derived_event_hours": ("overview_kpis", "events_per_day_by_status", "success_rate_per_day",
                            "action_status_counts", "failures_by_code_day", "skips_by_category_day",
                            "events_by_status_over_time", "success_rate_over_time", "failures_by_code_over_time",
                            "skips_by_category_over_time"),
    "derived_work_domains": ("violations_summary", "violations"),
    "derived_identity_names": ("identity_search", "identity_scim_requests"),
    "derived_identity_events": ("identity_events",),
    "derived_open_runs": ("recurring-failures", "recurring_failures_count", "overview_kpis"),
    "derived_identities": ("overview_kpis",),
    "derived_sources": ("overview_kpis",),
    "derived_error_codes": ("top_errors", "top_error_codes"),
    "derived_skip_identities": ("skip_identities", "skip_identities_top"),
    "derived_skip_reasons": ("skips_by_category",),
    "derived_skip_top": ("skip_identities_top",),
    "derived_violation_groups": ("violations", "violations_summary"),
    "derived_scim_hours": ("scim_kpis", "scim_requests_over_time", "scim_errors_by_type", "scim_auth_failures",
                           "scim_probes"),
    "derived_scim_latency": ("scim_kpis", "scim_latency"),
    "derived_scim_error_users": ("scim_errors_by_type",),
    "derived_correlation_hours": ("correlation_class_counts",),
    "derived_scim_unlogged": ("scim_unlogged_requests",),
    "derived_correlation_contradictions": ("correlation_contradictions",),
    "derived_scim_requests_by_user": ("scim_identity_timeline", "identity_scim_requests"),
    "derived_scim_key_user_names": ("scim_identity_timeline", "identity_scim_requests"),
    "correlation_requests": ("scim_identity_timeline",),
    "derived_scim_error_answers": ("violations",),
    "derived_scim_error_keys": ("violations",),
}


# Preflight (issue 26; queries/preflight.py): the same questions spelled plainly, one finding at a time. Kept apart from
# REFERENCES because the oracle's stores (the demo and its variants) hold no preflight run;
# tests/test_preflight_check.py holds each equal to its named query on a store that does.
def _preflight_event(kind_sql: str, which: int) -> str:
    from queries.preflight import EXPECTED

    return "CASE " + kind_sql + " " + " ".join(f"WHEN '{k}' THEN {v[which]}" for k, v in EXPECTED.items()) + \
        " ELSE false END"


_PF_EVENTS = """FROM events e WHERE e.service_principal_id = {r}.service_principal_id
                  AND e.activity_time > {r}.started_at
                  AND (e.source_id = {f}.source_id OR ({f}.source_id IS NULL
                       AND (e.target_id = {f}.target_id OR lower(e.user_name) = lower({f}.user_name))))"""


def _pf_exists(f: str, r: str, which: int) -> str:
    return (f"EXISTS (SELECT 1 {_PF_EVENTS.format(f=f, r=r)} AND "
            f"{_preflight_event(f'{f}.kind', which)})")


# A duplicate's group: the findings of its run and kind, each with its run's app and start, so that the events
# subquery reads only the group's row (no column two levels out: Spark runs the same text, queries/lake_sql.py).
_PF_GROUP = ("(SELECT g0.*, r0.service_principal_id, r0.started_at FROM preflight_findings g0 "
             "JOIN preflight_runs r0 ON r0.run_id = g0.run_id)")

_PF_STATUS = f"""
CASE
    WHEN f.kind = 'duplicate_user_name' THEN CASE
        WHEN EXISTS (SELECT 1 FROM {_PF_GROUP} g WHERE g.run_id = f.run_id AND g.kind = f.kind
                     AND g.group_key IS NOT DISTINCT FROM f.group_key AND {_pf_exists('g', 'g', 0)}) THEN 'confirmed'
        WHEN NOT EXISTS (SELECT 1 FROM {_PF_GROUP} g WHERE g.run_id = f.run_id AND g.kind = f.kind
                         AND g.group_key IS NOT DISTINCT FROM f.group_key AND NOT {_pf_exists('g', 'g', 1)})
            THEN 'wrong'
        ELSE 'not yet' END
    WHEN {_pf_exists('f', 'r', 0)} THEN 'confirmed'
    WHEN {_pf_exists('f', 'r', 1)} THEN 'wrong'
    WHEN f.kind IN ('nested_group_only', 'orphan') AND EXISTS (
        SELECT 1 FROM events e WHERE e.service_principal_id = r.service_principal_id
        AND e.activity_time > r.started_at) THEN 'confirmed'
    ELSE 'not yet'
END"""

_PF_FINDINGS = f"""
SELECT f.run_id, f.kind, f.user_principal_name, f.user_name, f.source_id, f.detail, f.predicted_outcome,
       f.recommended_action, {_PF_STATUS} AS status
FROM preflight_findings f, preflight_runs r
WHERE f.run_id = r.run_id AND r.started_at >= {SINCE} AND r.started_at < {UNTIL} AND {scope_filter('r')}
  AND ($run::BIGINT IS NULL OR r.run_id = $run::BIGINT)
ORDER BY f.run_id, f.kind, f.identity"""

PREFLIGHT_REFERENCES: dict[str, str] = {
    "preflight": _PF_FINDINGS,
    "preflight_page": f"""
SELECT p.*, '/identity?q=' || url_encode(coalesce(p.user_principal_name, p.user_name, p.source_id, ''))
           AS identity_link
FROM ({_PF_FINDINGS}) AS p""",
    "preflight_precision": f"""
WITH p AS ({_PF_FINDINGS}),
kinds AS (SELECT DISTINCT kind FROM p UNION ALL SELECT NULL)
SELECT k.kind,
       (SELECT count(*) FROM p WHERE p.kind IS NOT DISTINCT FROM k.kind OR k.kind IS NULL) AS findings,
       (SELECT count(*) FROM p WHERE (p.kind = k.kind OR k.kind IS NULL) AND status = 'confirmed') AS confirmed,
       (SELECT count(*) FROM p WHERE (p.kind = k.kind OR k.kind IS NULL) AND status = 'not yet') AS not_yet,
       (SELECT count(*) FROM p WHERE (p.kind = k.kind OR k.kind IS NULL) AND status = 'wrong') AS wrong,
       (SELECT CASE WHEN count(*) FILTER (WHERE status <> 'not yet') > 0 THEN
               count(*) FILTER (WHERE status = 'confirmed') / count(*) FILTER (WHERE status <> 'not yet') END
        FROM p WHERE p.kind = k.kind OR k.kind IS NULL) AS precision
FROM kinds k ORDER BY k.kind NULLS LAST""",
    "preflight_work_domains": """
SELECT DISTINCT domain FROM (
    SELECT lower(split_part(source_upn, '@', -1)) AS domain FROM events
    WHERE status = 'success' AND source_upn LIKE '%@%'
    UNION SELECT email_domain FROM events WHERE status = 'success' AND action = 'create')
WHERE domain IS NOT NULL ORDER BY domain""",
}
