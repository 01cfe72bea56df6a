"""The alert rules' questions (ingest/alerts/rules.py), as SQL over the store as of a time ``$now``: nothing dated
after ``$now`` counts, so ``python -m ingest alerts --at T`` sees the store as it was at T (as far as the rows
say: a summary row that spans ``$now`` is cut there or read from its source rows).

Each reads the summaries the store already keeps (job snapshots, ``derived_cycles``, ``derived_failures``, the
open runs, the violation groups, ``derived_scim_hours``, ``derived_scim_unlogged``) rather than recomputing them;
the rules' thresholds are applied in Python by ingest/alerts/rules.py.
"""

from __future__ import annotations

from ingest.summaries.events import violation_groups
from queries.datasets import OPEN_RUNS_SQL

NOW = "$now::TIMESTAMPTZ"
HOUR_OF_NOW = f"make_timestamptz(epoch_us({NOW}) // 3600000000 * 3600000000)"

# The app's display name per service principal (from the per-cycle summary, not every event).
APP_NAMES = """(SELECT service_principal_id, any_value(service_principal_name) AS app_name
                FROM derived_cycles GROUP BY service_principal_id)"""

# Each job's latest status snapshot captured at or before $now, with the counts of its last execution.
JOBS_NOW = f"""
SELECT s.job_id, s.service_principal_id, n.app_name, s.captured_at, s.schedule_interval, s.schedule_state,
       s.status_code, s.quarantine_reason, s.quarantine_since, s.quarantine_series_began, s.quarantine_next_attempt,
       s.last_execution_state, s.last_execution_began, s.last_execution_ended, s.last_success_ended,
       s.successive_failures,
       try_cast(s.raw->>'$.status.lastExecution.countEscrowed' AS BIGINT) AS count_escrowed,
       try_cast(s.raw->>'$.status.lastExecution.countExported' AS BIGINT) AS count_exported,
       try_cast(s.raw->>'$.status.lastExecution.countEntitled' AS BIGINT) AS count_entitled,
       s.raw->>'$.status.lastExecution.error.code' AS last_error_code
FROM sync_job_snapshots s LEFT JOIN {APP_NAMES} n USING (service_principal_id)
WHERE s.captured_at <= {NOW}
QUALIFY row_number() OVER (PARTITION BY s.job_id ORDER BY s.captured_at DESC) = 1
ORDER BY s.service_principal_id, s.job_id
"""

# Per job: the end of the newest cycle Entra logged (any event) that began at or before $now (cut at $now).
LAST_LOGGED_CYCLE = f"""
SELECT job_id, any_value(service_principal_id) AS service_principal_id,
       max(least(ended_at, {NOW})) AS last_logged
FROM derived_cycles WHERE started_at <= {NOW} AND job_id IS NOT NULL
GROUP BY job_id
"""

# Escrow as of $now: per app and job, the identities whose latest success-or-failure before $now was a failure
# (the recurring-failures dataset's open runs, any length, at $until = $now).
OPEN_FAILURE_RUNS = f"""
SELECT service_principal_id, job_id, count(*) AS escrowed, min(failing_since) AS failing_since,
       max(last_failure) AS last_failure
FROM {OPEN_RUNS_SQL} AS r
GROUP BY service_principal_id, job_id
"""

# Per job, the cycles whose events include writes (success or failure) that ended at or before $now, newest first:
# rank 1..$cycles are "recent"; the baseline is the older ones ending within $baseline_days before the first recent
# cycle began.
FAILURE_SPIKE = f"""
WITH per_cycle AS (
    SELECT job_id, cycle_id, any_value(service_principal_id) AS service_principal_id, min(started_at) AS started_at,
           max(ended_at) AS ended_at, sum(success)::BIGINT AS success, sum(failure)::BIGINT AS failure
    FROM derived_cycles WHERE job_id IS NOT NULL
    GROUP BY job_id, cycle_id
    HAVING max(ended_at) <= {NOW} AND sum(success) + sum(failure) > 0),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY job_id ORDER BY ended_at DESC, cycle_id DESC) AS rank FROM per_cycle),
recent AS (
    SELECT job_id, any_value(service_principal_id) AS service_principal_id, count(*) AS cycles,
           sum(success)::BIGINT AS success, sum(failure)::BIGINT AS failure, min(started_at) AS first_started,
           max(ended_at) AS last_ended
    FROM ranked WHERE rank <= $cycles GROUP BY job_id),
baseline AS (
    SELECT b.job_id, count(*) AS cycles, sum(b.success)::BIGINT AS success, sum(b.failure)::BIGINT AS failure
    FROM ranked b JOIN recent r USING (job_id)
    WHERE b.rank > $cycles AND b.ended_at >= r.first_started - to_days($baseline_days::INTEGER)
    GROUP BY b.job_id)
SELECT r.job_id, r.service_principal_id, n.app_name, r.cycles, r.success, r.failure, r.first_started, r.last_ended,
       coalesce(b.cycles, 0) AS baseline_cycles, coalesce(b.success, 0) AS baseline_success,
       coalesce(b.failure, 0) AS baseline_failure
FROM recent r LEFT JOIN baseline b USING (job_id) LEFT JOIN {APP_NAMES} n USING (service_principal_id)
ORDER BY r.service_principal_id, r.job_id
"""

# Per app, job and error code: the newest run of failures of that code with no gap longer than $lookback_days,
# up to $now, when it began and whether a failure of the code came in the $lookback_days before it (never, for the
# first), the identities it touched, and when the store's data begins (a code first seen in the data's first hours
# is not judged new: nothing says it was absent before).
NEW_ERROR = f"""
WITH f AS (
    SELECT service_principal_id, job_id, error_code, activity_time, source_id,
           lag(activity_time) OVER (PARTITION BY service_principal_id, job_id, error_code
                                    ORDER BY activity_time, id) AS previous
    FROM derived_failures WHERE activity_time <= {NOW} AND error_code IS NOT NULL),
starts AS (
    SELECT *, sum(CASE WHEN previous IS NULL OR activity_time - previous > to_days($lookback_days::INTEGER)
                       THEN 1 ELSE 0 END)
                  OVER (PARTITION BY service_principal_id, job_id, error_code ORDER BY activity_time
                        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS episode
    FROM f),
episodes AS (
    SELECT service_principal_id, job_id, error_code, episode, min(activity_time) AS began, max(activity_time) AS last,
           count(*) AS failures, count(DISTINCT source_id) AS identities
    FROM starts GROUP BY ALL)
SELECT e.service_principal_id, e.job_id, n.app_name, e.error_code, e.began, e.last, e.failures, e.identities,
       (SELECT min(started_at) FROM derived_cycles) AS data_begins
FROM episodes e LEFT JOIN {APP_NAMES} n USING (service_principal_id)
QUALIFY row_number() OVER (PARTITION BY e.service_principal_id, e.job_id, e.error_code ORDER BY e.episode DESC) = 1
ORDER BY e.service_principal_id, e.job_id, e.error_code
"""

# The SCIM clients that are Entra: a client (credential fingerprint, else user agent, else IP; as the correlation
# judges them) with requests the correlation paired with Entra's events, per SCIM tenant with the app it serves.
_CLIENT = "coalesce(r.credential_id, r.user_agent, r.client_ip)"
ENTRA_CLIENTS = f"""(
    SELECT {_CLIENT} AS client, r.tenant, mode(c.service_principal_id) AS service_principal_id
    FROM correlation c JOIN scim_requests r ON r.request_id = c.request_id
    WHERE c.match_class IN ('matched', 'contradiction') AND c.service_principal_id IS NOT NULL
    GROUP BY ALL)"""
# The app each SCIM tenant serves (over ``ec``, the Entra clients).
TENANT_APPS = "(SELECT tenant, mode(service_principal_id) AS service_principal_id FROM ec GROUP BY tenant)"
# A request from Entra: a health probe, a client the correlation paired with Entra's events, or Entra's user agent.
_FROM_ENTRA = (f"(r.is_probe OR {_CLIENT} IN (SELECT client FROM ec) "
               "OR r.user_agent ILIKE '%azure ad%' OR r.user_agent ILIKE '%entra%')")

# Credential evidence per app as of $now: bad = an Entra failure with a credential code or a 401/403, or a 401/403
# answered to Entra's SCIM client; good = an Entra success, or a SCIM answer below 400 to Entra's client. The
# alert is active while the newest evidence is bad; it began at the first bad evidence after the last good one.
CREDENTIAL_EVIDENCE = f"""
WITH ec AS MATERIALIZED {ENTRA_CLIENTS},
ta AS MATERIALIZED {TENANT_APPS},
bad_events AS (
    SELECT service_principal_id, any_value(job_id) AS job_id, activity_time AS t, source_id,
           any_value(error_code) AS code
    FROM derived_failures
    WHERE activity_time <= {NOW}
      AND (error_code ILIKE '%CredentialValidation%' OR error_code = 'Unauthorized' OR http_status IN (401, 403))
    GROUP BY service_principal_id, activity_time, source_id),
bad_scim AS (
    SELECT coalesce(ec.service_principal_id, ta.service_principal_id) AS service_principal_id, r.ts AS t,
           r.status
    FROM scim_requests r LEFT JOIN ec ON ec.client = {_CLIENT} AND ec.tenant IS NOT DISTINCT FROM r.tenant
         LEFT JOIN ta ON ta.tenant IS NOT DISTINCT FROM r.tenant
    WHERE r.status IN (401, 403) AND r.ts <= {NOW} AND {_FROM_ENTRA}),
good_events AS (  -- whole hours from the hourly rollup, the hour of $now from the events
    SELECT service_principal_id, max(last_time) AS t FROM derived_event_hours
    WHERE status = 'success' AND last_time <= {NOW} GROUP BY service_principal_id
    UNION ALL
    SELECT service_principal_id, max(activity_time) FROM events
    WHERE status = 'success' AND activity_time >= {HOUR_OF_NOW} AND activity_time <= {NOW}
    GROUP BY service_principal_id),
good_scim AS (
    SELECT coalesce(ec.service_principal_id, ta.service_principal_id) AS service_principal_id, max(h.last_ts) AS t
    FROM derived_scim_hours h LEFT JOIN ec ON ec.client = coalesce(h.credential_id, h.user_agent, h.client_ip)
         LEFT JOIN ta ON ta.tenant IS NOT DISTINCT FROM h.tenant
    WHERE h.status < 400 AND h.last_ts <= {NOW}
      AND (h.is_probe OR ec.client IS NOT NULL OR h.user_agent ILIKE '%azure ad%' OR h.user_agent ILIKE '%entra%')
    GROUP BY ALL
    UNION ALL
    SELECT coalesce(ec.service_principal_id, ta.service_principal_id), max(r.ts)
    FROM scim_requests r LEFT JOIN ec ON ec.client = {_CLIENT} AND ec.tenant IS NOT DISTINCT FROM r.tenant
         LEFT JOIN ta ON ta.tenant IS NOT DISTINCT FROM r.tenant
    WHERE r.status < 400 AND r.ts >= {HOUR_OF_NOW} AND r.ts <= {NOW} AND {_FROM_ENTRA}
    GROUP BY ALL),
good AS (SELECT service_principal_id, max(t) AS t FROM (SELECT * FROM good_events UNION ALL SELECT * FROM good_scim)
         WHERE service_principal_id IS NOT NULL GROUP BY ALL),
bad AS (
    SELECT service_principal_id, t, source_id, code, 'event' AS side FROM bad_events
    UNION ALL
    SELECT service_principal_id, t, NULL, 'HTTP ' || status, 'scim' FROM bad_scim
    WHERE service_principal_id IS NOT NULL)
SELECT b.service_principal_id, n.app_name,
       (SELECT any_value(job_id) FROM derived_cycles c WHERE c.service_principal_id = b.service_principal_id)
           AS job_id,
       min(b.t) AS began, max(b.t) AS last_bad, count(DISTINCT b.source_id) AS identities,
       arg_max(b.code, b.t) AS latest_code, bool_or(b.side = 'scim') AS scim_seen, any_value(g.t) AS last_good
FROM bad b LEFT JOIN good g USING (service_principal_id) LEFT JOIN {APP_NAMES} n USING (service_principal_id)
WHERE b.t > coalesce(g.t, '-infinity'::TIMESTAMPTZ)
GROUP BY b.service_principal_id, n.app_name
ORDER BY b.service_principal_id
"""

# Constraint violations open at $now: the violation groups over the failures up to $now (the same text as the
# violations dataset, ingest.summaries.events.violation_groups, with the store's work domains), open when no success
# of the identity followed their last failure before $now.
OPEN_VIOLATIONS = f"""
WITH g AS ({violation_groups(f"derived_failures WHERE activity_time <= {NOW}", "derived_work_domains")})
SELECT g.kind, g.service_principal_id, n.app_name, g.job_id, g.source_id, g.first_seen, g.last_seen, g.occurrences
FROM g LEFT JOIN {APP_NAMES} n USING (service_principal_id)
WHERE coalesce(g.next_success_at, 'infinity'::TIMESTAMPTZ) > {NOW} AND list_contains($kinds::VARCHAR[], g.kind)
ORDER BY g.first_seen, g.kind, g.service_principal_id, g.source_id
"""

# SCIM writes Entra never logged (the correlation's SCIM-only writes, not probes) in ($since, $now], per SCIM
# tenant and client, with the app that tenant serves.
UNLOGGED_WRITES = f"""
WITH ec AS MATERIALIZED {ENTRA_CLIENTS}
SELECT u.tenant, coalesce(u.credential_id, u.user_agent, u.client_ip) AS client,
       coalesce(any_value(u.service_principal_id), any_value(ta.service_principal_id)) AS service_principal_id,
       count(*) AS writes, count(DISTINCT coalesce(u.resource_id, lower(u.user_name))) AS identities,
       min(u.ts) AS first_ts, max(u.ts) AS last_ts, any_value(u.user_agent) AS user_agent
FROM derived_scim_unlogged u LEFT JOIN {TENANT_APPS} ta ON ta.tenant IS NOT DISTINCT FROM u.tenant
WHERE u.method IN ('POST', 'PUT', 'PATCH', 'DELETE') AND u.ts > $since::TIMESTAMPTZ AND u.ts <= {NOW}
GROUP BY ALL
"""
UNLOGGED_WRITES = f"""
SELECT w.*, n.app_name FROM ({UNLOGGED_WRITES}) w LEFT JOIN {APP_NAMES} n USING (service_principal_id)
ORDER BY w.tenant, w.client
"""

# Per ingest source as of $now: its newest successful run's end, its latest run's outcome and message, its first run.
INGEST_FRESHNESS = f"""
SELECT source, max(ended_at) FILTER (WHERE outcome = 'success' AND ended_at <= {NOW}) AS last_success,
       arg_max(outcome, started_at) AS last_outcome, arg_max(message, started_at) AS last_message,
       min(started_at) AS first_started
FROM ingest_runs WHERE started_at <= {NOW}
GROUP BY source ORDER BY source
"""

# Preflight (issue 26): per app and job, the latest preflight run at or before $now, its findings per kind and how
# many of them its previous run (of the same app and job) did not have (by kind and identity).
PREFLIGHT_FINDINGS = f"""
WITH runs AS (SELECT * FROM preflight_runs WHERE started_at <= {NOW}),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY service_principal_id, job_id ORDER BY started_at DESC, run_id DESC) AS n
    FROM runs),
latest AS (SELECT * FROM ranked WHERE n = 1),
previous AS (SELECT * FROM ranked WHERE n = 2)
SELECT l.service_principal_id, an.app_name, l.job_id, l.run_id, l.started_at, f.kind, count(*) AS findings,
       count(*) FILTER (WHERE p.run_id IS NULL OR NOT EXISTS (
           SELECT 1 FROM preflight_findings o WHERE o.run_id = p.run_id AND o.kind = f.kind
           AND o.identity = f.identity)) AS new_findings,
       any_value(p.started_at) AS previous_started_at
FROM latest l JOIN preflight_findings f ON f.run_id = l.run_id
LEFT JOIN previous p ON p.service_principal_id IS NOT DISTINCT FROM l.service_principal_id
                    AND p.job_id IS NOT DISTINCT FROM l.job_id
LEFT JOIN {APP_NAMES} an ON an.service_principal_id = l.service_principal_id
WHERE list_contains($kinds::VARCHAR[], f.kind)
GROUP BY ALL
ORDER BY l.service_principal_id, l.job_id, f.kind
"""
