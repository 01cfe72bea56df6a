"""The summaries of Entra's events (declarations for :mod:`ingest.summaries`), and the product's rules they
apply: our advice per error and the kinds of constraint violation.

Each exists because a page question over every event is too slow at 5M events without it (bench/BENCHMARKS.md,
B4); each page query that reads one is held equal to a plain reference over ``events`` (queries/reference.py).
"""

from __future__ import annotations

from ingest.summaries import HOUR_SQL, Summary

# A conflict (HTTP 409, scimType uniqueness, *Conflict, DuplicateTargetEntries). Over alias ``e``.
CONFLICT_SQL = """(e.http_status = 409 OR e.scim_type = 'uniqueness' OR e.error_code LIKE '%Conflict'
         OR e.error_code = 'DuplicateTargetEntries')"""
# The object is a group: Entra's identityType of the source (else the target: "Group" or a SCIM Group URN). The
# Graph docs' 409 example is a Group (microsoft-graph-docs-contrib, provisioningobjectsummary-list.md, example 2).
GROUP_SQL = "(lower(coalesce(e.source_type, e.target_type)) LIKE '%group')"

# Our own advice where Microsoft's recommendedAction is empty (first match wins). Over alias ``e``.
RECOMMENDED_ACTION_SQL = f"""coalesce(nullif(e.recommended_action, ''), CASE
    WHEN {CONFLICT_SQL} AND {GROUP_SQL}
        THEN 'Fix the duplicate group name: another group in the app already has this displayName. Rename or '
             'remove that group in the app, or change the group''s displayName in Entra ID or the displayName '
             'mapping (or the matching attribute, if the existing group should be taken over); Entra retries in a '
             'later cycle.'
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

# The kind of a failure (over alias ``e``; ``{allowed}`` is a relation of allowed email domains). A conflict of a
# group is about its displayName, not a userName (it has none).
VIOLATION_KIND_SQL = f"""CASE
        WHEN {CONFLICT_SQL} AND {GROUP_SQL} THEN 'duplicate_group_name'
        WHEN {CONFLICT_SQL} THEN 'duplicate_user_name'
        WHEN e.http_status = 400 AND e.scim_type = 'invalidValue'
             AND ((e.email_domain IS NOT NULL AND e.email_domain NOT IN (SELECT domain FROM {{allowed}}))
                  OR e.scim_detail ILIKE '%email%')
            THEN 'non_work_email'
        WHEN e.http_status = 400 AND e.scim_type = 'invalidValue' THEN 'other_rejected_value'
    END"""

IDENTITY_KEY = ("service_principal_id", "job_id", "source_id")

# Columns of derived_failures copied from events (the failures dataset's and the violations' inputs).
FAILURE_EVENT_COLUMNS = (
    "id", "activity_time", "tenant_id", "job_id", "cycle_id", "change_id", "service_principal_id",
    "service_principal_name", "action", "status", "error_code", "error_category", "error_reason",
    "source_id", "source_name", "source_upn", "target_id", "user_name", "duration_ms",
    "http_status", "scim_type", "scim_detail", "next_retry_at", "email_domain", "source_type", "target_type",
)

# One row per failed event with its run: the failures of one identity in a row, by time (then id), that a success
# of the identity ends (skipped and warning events neither count nor end a run). consecutive_cycles: the distinct
# cycles of the run up to and including the failure; next_success_at: the identity's first success strictly after
# it (never for an event without a source id or app); recommended_action: Microsoft's, else ours.
FAILURES = Summary("derived_failures", key=IDENTITY_KEY, select=f"""
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
       CASE WHEN e.source_id IS NOT NULL AND e.service_principal_id IS NOT NULL THEN r.next_success_at END
           AS next_success_at,
       {RECOMMENDED_ACTION_SQL} AS recommended_action
FROM events e JOIN runs r USING (id)
WHERE e.status = 'failure'""")

# Per (job, cycle, app): the cycle's window and its counts by action and status (the cycles dataset sums them).
CYCLES = Summary("derived_cycles", key=("job_id", "cycle_id"), select="""
SELECT job_id, cycle_id, service_principal_id,
       min(activity_time) AS started_at, max(activity_time) AS ended_at, count(*) AS events,
       count(*) FILTER (WHERE action = 'create') AS created,
       count(*) FILTER (WHERE action = 'update') AS updated,
       count(*) FILTER (WHERE action = 'disable') AS disabled,
       count(*) FILTER (WHERE action = 'delete') AS deleted,
       count(*) FILTER (WHERE action NOT IN ('create', 'update', 'disable', 'delete') OR action IS NULL) AS other,
       count(*) FILTER (WHERE status = 'success') AS success,
       count(*) FILTER (WHERE status = 'failure') AS failure,
       count(*) FILTER (WHERE status = 'skipped') AS skipped,
       count(*) FILTER (WHERE status = 'warning') AS warning,
       bool_or(import_kind = 'full') AS full_import, any_value(service_principal_name) AS service_principal_name
FROM events {scope}
GROUP BY job_id, cycle_id, service_principal_id""")

# Events per UTC hour and the dimensions the pages count by (queries.filters.EVENT_COUNTS reads whole hours here
# and a window's ragged edges from the events).
EVENT_HOURS = Summary("derived_event_hours", key=("hour",), select=f"""
SELECT {HOUR_SQL.format(col='activity_time')} AS hour, service_principal_id, job_id, status, action, error_code,
       skip_category, skip_reason, source_type, count(*) AS events, min(activity_time) AS first_time,
       max(activity_time) AS last_time
FROM events {{scope}}
GROUP BY ALL""")

# The default allowed email domains of the violations: the UPN domains of successful events and the email domains
# of successful creates.
WORK_DOMAINS = Summary("derived_work_domains", key=("id",), grows=True, select="""
SELECT DISTINCT domain FROM (
    SELECT lower(split_part(source_upn, '@', -1)) AS domain FROM events {scope}
    WHERE status = 'success' AND source_upn LIKE '%@%'
    UNION ALL
    SELECT email_domain FROM events {scope}
    WHERE status = 'success' AND action = 'create' AND email_domain IS NOT NULL)""")

# The events grouped by every column identity_search matches or lists, plus app and job: a row matches the search
# exactly when its events do, so the search reads these rows instead of four text columns of every event. The
# userName is stored lower-cased only where it differs from the UPN (NULL matches nothing; an equal one matches
# when the UPN does). Near-unique text stored uncompressed: the search reads every row, and decompressing
# DICT_FSST made its scan ~2.5x slower. Sorted by source id: identity_scim_requests finds one identity's rows in
# one row group.
IDENTITY_NAMES = Summary("derived_identity_names", key=IDENTITY_KEY, order="source_id", columns="""
    service_principal_id VARCHAR, job_id VARCHAR, source_id VARCHAR USING COMPRESSION uncompressed,
    source_upn VARCHAR USING COMPRESSION uncompressed, user_name VARCHAR USING COMPRESSION uncompressed,
    target_id VARCHAR USING COMPRESSION uncompressed, source_upn_lower VARCHAR USING COMPRESSION uncompressed,
    user_name_lower VARCHAR USING COMPRESSION uncompressed, events BIGINT, first_seen TIMESTAMPTZ,
    last_seen TIMESTAMPTZ, source_name VARCHAR USING COMPRESSION uncompressed, source_name_time TIMESTAMPTZ,
    source_type VARCHAR""",
                         select="""
SELECT service_principal_id, job_id, source_id, source_upn, user_name, target_id,
       lower(source_upn), nullif(lower(user_name), lower(source_upn)), count(*), min(activity_time), max(activity_time),
       arg_max(source_name, activity_time), max(activity_time) FILTER (WHERE source_name IS NOT NULL), source_type
FROM events {scope}
GROUP BY service_principal_id, job_id, source_id, source_upn, user_name, target_id, source_type""")

# One identity's events together: the columns identity_events shows and filters on, sorted by source id (then
# time), so zone maps find an identity's rows in one row group (in the time-ordered events they lie in every one).
# A load appends its new events and replaces changed ones; past a quarter of unsorted rows it is rewritten sorted.
IDENTITY_EVENTS = Summary("derived_identity_events", key=("id",), resort_at=0.25,
                          order="source_id NULLS LAST, activity_time, id", select="""
SELECT source_id, activity_time, id, service_principal_id, service_principal_name, job_id, action, status,
       error_code, skip_category, user_name, target_id, cycle_id, source_type
FROM events {scope}""")



def open_runs(failures: str) -> str:
    """Per identity, its run of failures still open (``failures``: a relation of derived_failures rows holding, for
    each identity, the failures after its latest success before the period's end): the run's length in cycles,
    when it began, its latest failure with that failure's names, error and advice."""
    return f"""
SELECT service_principal_id, job_id, source_id,
       arg_max(source_upn, (activity_time, id)) AS source_upn, arg_max(user_name, (activity_time, id)) AS user_name,
       max(consecutive_cycles) AS consecutive_cycles, min(activity_time) AS failing_since,
       max(activity_time) AS last_failure, arg_max(error_code, (activity_time, id)) AS error_code,
       arg_max(recommended_action, (activity_time, id)) AS recommended_action
FROM {failures}
GROUP BY service_principal_id, job_id, source_id"""


# The runs open now (no success after them): what the Failures page and the Overview read when the period runs
# to now (the default); a period ending earlier computes them from derived_failures with the same text.
OPEN_RUNS = Summary("derived_open_runs", key=IDENTITY_KEY, depends=("derived_failures",),
                    scope_table="derived_failures", select=open_runs(
                        "derived_failures {scope} WHERE source_id IS NOT NULL AND service_principal_id IS NOT NULL "
                        "AND next_success_at IS NULL"))

# Per identity: its events and failures (the Overview's all-time identity counts, per app and job).
IDENTITIES = Summary("derived_identities", key=IDENTITY_KEY, select="""
SELECT service_principal_id, job_id, source_id, count(*) AS events,
       count(*) FILTER (WHERE status = 'failure') AS failures
FROM events {scope}
GROUP BY service_principal_id, job_id, source_id""")


# Per source object over all apps and jobs: whether it ever failed (the Overview's all-time counts with no app or
# job filter: one row per identity instead of a distinct count over every app and job's rows).
SOURCES = Summary("derived_sources", key=("source_id",), select="""
SELECT source_id, count(*) FILTER (WHERE status = 'failure') > 0 AS failed
FROM events {scope}
WHERE source_id IS NOT NULL
GROUP BY source_id""")


def error_code_aggregate(failures: str, *, details: bool = True) -> str:
    """Per error code over ``failures`` (a relation of derived_failures rows): failures, identities, first and last
    seen, the commonest HTTP status and scimType, and with ``details`` the commonest detail and advice and the latest
    announced retry (the Overview's short list leaves those out)."""
    more = ("mode(scim_detail) AS scim_detail, max(next_retry_at) AS next_retry_at, "
            "mode(recommended_action) AS recommended_action")
    return f"""
SELECT p.error_code, p.failures, coalesce(i.identities, 0) AS identities, p.first_seen, p.last_seen, p.http_status,
       p.scim_type{", p.scim_detail, p.next_retry_at, p.recommended_action" if details else ""}
FROM (SELECT error_code, count(*) AS failures, min(activity_time) AS first_seen, max(activity_time) AS last_seen,
             mode(http_status) AS http_status, mode(scim_type) AS scim_type{", " + more if details else ""}
      FROM {failures} GROUP BY error_code) AS p
LEFT JOIN (  -- identities per code from (code, identity) pairs: cheaper than count(DISTINCT) per code
      SELECT error_code, count(*) AS identities
      FROM (SELECT DISTINCT error_code, source_id FROM {failures}) WHERE source_id IS NOT NULL
      GROUP BY error_code) AS i
  ON p.error_code IS NOT DISTINCT FROM i.error_code"""


# The Failures page's top errors over all time (counting identities per code is the cost: ~0.1 s at 5M events).
ERROR_CODES = Summary("derived_error_codes", key=("error_code",), depends=("derived_failures",),
                      scope_table="derived_failures", select=error_code_aggregate("derived_failures {scope}"))



def skip_identity_aggregate(skipped: str) -> str:
    """Per app, source object and skip category over ``skipped`` (a relation of skipped events): who is skipped,
    why (the latest reason), since when, in how many cycles."""
    return f"""
SELECT source_id, service_principal_id, any_value(service_principal_name) AS service_principal_name,
       arg_max(source_upn, activity_time) AS source_upn, coalesce(skip_category, 'other') AS skip_category,
       arg_max(skip_reason, activity_time) AS skip_reason, min(activity_time) AS first_seen,
       max(activity_time) AS last_seen, count(DISTINCT cycle_id) AS cycles, count(*) AS skips
FROM {skipped}
GROUP BY source_id, service_principal_id, coalesce(skip_category, 'other')"""


def skip_reason_aggregate(skipped: str) -> str:
    """Per app, source object, skip category and reason over ``skipped``: the skips (summed per category and
    reason, with the distinct source objects, by the Skipped page)."""
    return f"""
SELECT service_principal_id, source_id, coalesce(skip_category, 'other') AS skip_category,
       coalesce(skip_reason, '') AS skip_reason, count(*) AS skips
FROM {skipped}
GROUP BY ALL"""


# The Skipped page over all time (a skip aggregate over every skipped event took ~0.7 s at 5M events).
SKIP_IDENTITIES = Summary("derived_skip_identities", key=("service_principal_id", "source_id"),
                          select=skip_identity_aggregate("events {scope} WHERE status = 'skipped'"))
# The Skipped page's tables: per category the identities skipped in the most cycles (then latest, then by id), a
# top-N aggregate over ``identities`` (rows of skip_identity_aggregate) keeping ``limit`` per category, numbered by
# ``rank``, with the category's identity count. The store keeps the first SKIP_TOP_ROWS of every category.
SKIP_TOP_ROWS = 500


def skip_top(identities: str, limit: str) -> str:
    return f"""
SELECT * FROM (
    SELECT unnest(top, recursive := true), category_identities, generate_subscripts(top, 1) AS rank
    FROM (SELECT count(*) AS category_identities,
                 min_by(s, (-cycles, -epoch_us(last_seen), source_id, service_principal_id), {limit}) AS top
          FROM {identities} AS s GROUP BY skip_category))"""


SKIP_REASONS = Summary("derived_skip_reasons", key=("service_principal_id", "source_id"),
                       select=skip_reason_aggregate("events {scope} WHERE status = 'skipped'"))



def violation_groups(failures: str, allowed: str) -> str:
    """Per kind of violation, app, job and source object over ``failures`` (a relation of derived_failures rows),
    their kinds judged with the email domains of ``allowed``: the latest userName and email domain, first and last
    seen, occurrences, and the identity's first success after the group's last failure."""
    return f"""
SELECT kind, service_principal_id, job_id, source_id, arg_max(user_name, activity_time) AS user_name,
       arg_max(email_domain, activity_time) FILTER (WHERE email_domain IS NOT NULL) AS email_domain,
       min(activity_time) AS first_seen, max(activity_time) AS last_seen, count(*) AS occurrences,
       arg_max(next_success_at, activity_time) AS next_success_at,
       arg_max(source_name, activity_time) AS source_name, arg_max(source_type, activity_time) AS source_type,
       arg_max(target_type, activity_time) AS target_type
FROM (SELECT e.*, {VIOLATION_KIND_SQL.format(allowed=allowed)} AS kind FROM (SELECT * FROM {failures}) AS e)
WHERE kind IS NOT NULL
GROUP BY kind, service_principal_id, job_id, source_id"""


# The violations over all time with the default allowed domains (the store's work domains): a failure's kind depends
# on them, so the table is rebuilt whenever they grow.
VIOLATION_GROUPS = Summary("derived_violation_groups", key=IDENTITY_KEY, scope_table="derived_failures",
                           depends=("derived_failures", "derived_work_domains"),
                           rebuild_after=("derived_work_domains",),
                           select=violation_groups("derived_failures {scope}", "derived_work_domains"))

# Recomputed from derived_skip_identities by every refresh (~40 ms at 5M events: 66k identities).
SKIP_TOP = Summary("derived_skip_top", depends=("derived_skip_identities",),
                   select=skip_top("derived_skip_identities", str(SKIP_TOP_ROWS)))

SUMMARIES = [FAILURES, CYCLES, EVENT_HOURS, WORK_DOMAINS, IDENTITY_NAMES, IDENTITY_EVENTS, OPEN_RUNS, IDENTITIES,
             SOURCES, ERROR_CODES, SKIP_IDENTITIES, SKIP_REASONS, SKIP_TOP, VIOLATION_GROUPS]
