"""SQL that turns raw Graph ``provisioningObjectSummary`` JSON into the typed ``events`` columns.

Accepts the v1.0 shape and the beta shape (``action``, ``statusInfo``); ``servicePrincipal`` as an
object or as a one-element array; skips' reasons wherever Entra puts them. Parses the SCIM "Web
Response" (status, ``scimType``, detail) and Entra's retry count and next-retry time out of the
reason text. A skipped event's category comes from the skip-reason table (:mod:`ingest.skip_reasons`). The raw
JSON is kept unchanged so new questions need no re-download.
"""

from __future__ import annotations

import json

from ingest.skip_reasons import category_sql

# {source} is any relation with a JSON column ``raw`` and a VARCHAR ``pos`` (where the record came from).
# The parts of an event the analytics need, parsed ONCE per event (json_transform is lenient: a value
# of the wrong type becomes NULL or its JSON text, never an error).
EVENT_STRUCTURE = json.dumps({
    "id": "VARCHAR", "activityDateTime": "VARCHAR", "tenantId": "VARCHAR", "jobId": "VARCHAR",
    "cycleId": "VARCHAR", "changeId": "VARCHAR", "durationInMilliseconds": "VARCHAR",
    "provisioningAction": "VARCHAR", "action": "VARCHAR",
    "provisioningStatusInfo": {"status": "VARCHAR", "errorInformation": {
        "errorCode": "VARCHAR", "errorCategory": "VARCHAR", "reason": "VARCHAR",
        "additionalDetails": "VARCHAR", "recommendedAction": "VARCHAR"}},
    "statusInfo": {"status": "VARCHAR", "errorCode": "VARCHAR", "errorCategory": "VARCHAR", "reason": "VARCHAR",
                   "additionalDetails": "VARCHAR", "recommendedAction": "VARCHAR"},
    "provisioningSteps": [{"name": "VARCHAR", "provisioningStepType": "VARCHAR", "description": "VARCHAR",
                           "details": "JSON"}],
    "modifiedProperties": [{"displayName": "VARCHAR", "oldValue": "VARCHAR", "newValue": "VARCHAR"}],
    "servicePrincipal": "JSON",
    "sourceIdentity": {"id": "VARCHAR", "displayName": "VARCHAR", "identityType": "VARCHAR", "details": "JSON"},
    "targetIdentity": {"id": "VARCHAR", "displayName": "VARCHAR", "identityType": "VARCHAR"},
    "initiatedBy": {"displayName": "VARCHAR"},
})

# The years an event's times may fall in (issue 27). DuckDB parses years past 9999 and BC dates, which Python's
# datetime (and so the derived refresh and every reader) cannot hold: an activityDateTime outside is no time
# (the record is rejected: ingest/files.py names the reason), a next-retry time outside is left NULL (the
# reason text keeps it).
TIME_RANGE_YEARS = (1900, 2999)

# {source} is any relation with a JSON column ``raw`` and a VARCHAR ``pos`` (where the record came from).
NORMALISE_EVENTS = (r"""
WITH src AS (SELECT raw::JSON AS raw, pos FROM ({source})),
parsed AS (SELECT raw, pos, json_transform(raw, '""" + EVENT_STRUCTURE.replace("'", "''") + r"""') AS e FROM src),
parts AS (
    SELECT
        raw, pos, e,
        coalesce(e.provisioningStatusInfo.status, e.statusInfo.status) AS status_raw,
        coalesce(e.provisioningStatusInfo.errorInformation.errorCode, e.statusInfo.errorCode) AS error_code,
        coalesce(e.provisioningStatusInfo.errorInformation.errorCategory, e.statusInfo.errorCategory)
            AS error_category,
        coalesce(e.provisioningStatusInfo.errorInformation.reason, e.statusInfo.reason) AS error_reason,
        coalesce(e.provisioningStatusInfo.errorInformation.additionalDetails, e.statusInfo.additionalDetails)
            AS error_details,
        coalesce(e.provisioningStatusInfo.errorInformation.recommendedAction, e.statusInfo.recommendedAction)
            AS recommended_action,
        coalesce(e.provisioningSteps, []) AS steps,
        coalesce(e.modifiedProperties, []) AS mods,
        CASE WHEN json_type(e.servicePrincipal) = 'ARRAY' THEN e.servicePrincipal->'$[0]'
             ELSE e.servicePrincipal END AS sp
    FROM parsed
),
fields AS (
    SELECT
        raw, pos,
        e.id AS id,
        try_cast(e.activityDateTime AS TIMESTAMPTZ) AS activity_time_any,
        e.tenantId AS tenant_id,
        e.jobId AS job_id,
        e.cycleId AS cycle_id,
        e.changeId AS change_id,
        sp->>'$.id' AS service_principal_id,
        sp->>'$.displayName' AS service_principal_name,
        lower(coalesce(e.provisioningAction, e.action)) AS action,
        lower(status_raw) AS status,
        error_code, error_category, error_reason, error_details, recommended_action,
        e.sourceIdentity.id AS source_id,
        e.sourceIdentity.displayName AS source_name,
        e.sourceIdentity.identityType AS source_type,
        nullif(e.targetIdentity.id, '') AS target_id,
        nullif(e.targetIdentity.displayName, '') AS target_name,
        e.targetIdentity.identityType AS target_type,
        coalesce(
            e.sourceIdentity.details->>'$.UserPrincipalName',
            e.sourceIdentity.details->>'$.userPrincipalName',
            list_filter(steps, lambda s: s.details->>'$.userPrincipalName' IS NOT NULL)[1]
                .details->>'$.userPrincipalName'
        ) AS source_upn,
        list_filter(mods, lambda m: lower(m.displayName) = 'username')[1] AS mod_user_name,
        list_filter(mods, lambda m: lower(m.displayName) LIKE 'emails%work%'
            OR lower(m.displayName) IN ('mail', 'email', 'emails'))[1] AS mod_email,
        list_filter(steps, lambda s: lower(s.provisioningStepType) = 'scoping')[1].details AS scoping,
        list_filter(steps, lambda s: s.details->>'$.SkipReason' IS NOT NULL)[1].details AS reason_details,
        list_filter(steps, lambda s: lower(s.provisioningStepType) = 'import')[1].description AS import_text,
        list_filter(steps, lambda s: s.name ILIKE '%skip%')[1].description AS skip_step_text,
        try_cast(e.durationInMilliseconds AS BIGINT) AS duration_ms,
        e.initiatedBy.displayName AS initiated_by
    FROM parts
),
typed AS (
    SELECT
        *,
        coalesce(mod_user_name.newValue, mod_user_name.oldValue, source_upn) AS user_name,
        coalesce(mod_email.newValue, mod_email.oldValue) AS email,
        scoping->>'$."Active in the source system"' AS scope_active,
        scoping->>'$."Assigned to the application"' AS scope_assigned,
        scoping->>'$."User has the required role"' AS scope_has_role,
        scoping->>'$."Scoping filter evaluation passed"' AS scope_filter_passed,
        reason_details->>'$.SkipReason' AS step_skip_reason,
        nullif(regexp_extract(error_details, 'SkipReason\W+(\w+)', 1), '') AS details_skip_reason,
        coalesce(
            try_cast(nullif(regexp_extract(error_reason, 'HTTP status code (\d{3})', 1), '') AS INTEGER),
            try_cast(nullif(regexp_extract(error_reason, '"status"\s*:\s*"?(\d{3})', 1), '') AS INTEGER),
            CASE regexp_extract(error_reason, 'StatusCode:\s*(\w+)', 1)
                WHEN 'BadRequest' THEN 400 WHEN 'Unauthorized' THEN 401 WHEN 'Forbidden' THEN 403
                WHEN 'NotFound' THEN 404 WHEN 'Conflict' THEN 409 WHEN 'PreconditionFailed' THEN 412
                WHEN 'TooManyRequests' THEN 429 WHEN 'InternalServerError' THEN 500
                WHEN 'NotImplemented' THEN 501 WHEN 'BadGateway' THEN 502
                WHEN 'ServiceUnavailable' THEN 503 WHEN 'GatewayTimeout' THEN 504 END
        ) AS http_status,
        nullif(regexp_extract(error_reason, '"scimType"\s*:\s*"([^"]*)"', 1), '') AS scim_type,
        nullif(regexp_extract(error_reason, '"detail"\s*:\s*"((?:[^"\\]|\\.)*)"', 1), '') AS scim_detail,
        try_cast(nullif(regexp_extract(error_reason, 'retried (\d+) times', 1), '') AS INTEGER) AS retry_count,
        try_cast(nullif(regexp_extract(error_reason, 'retried again after this date:\s*([0-9T:.+\-]+Z?)', 1), '')
                 AS TIMESTAMPTZ) AS next_retry_any,
        CASE WHEN import_text LIKE 'Retrieved %' THEN 'full'
             WHEN import_text LIKE 'Received %' THEN 'delta' END AS import_kind
    FROM fields
)
SELECT
    id,
    CASE WHEN activity_time_any >= {lo} AND activity_time_any < {hi} THEN activity_time_any END AS activity_time,
    tenant_id, job_id, cycle_id, change_id,
    service_principal_id, service_principal_name, action, status,
    error_code, error_category, error_reason, error_details, recommended_action,
    http_status, scim_type, scim_detail, retry_count,
    CASE WHEN next_retry_any >= {lo} AND next_retry_any < {hi} THEN next_retry_any END AS next_retry_at,
    source_id, source_name, source_upn, source_type,
    target_id, target_name, target_type,
    user_name, email,
    CASE WHEN email LIKE '%@%' THEN lower(split_part(email, '@', -1)) END AS email_domain,
    coalesce(step_skip_reason, details_skip_reason, CASE WHEN status = 'skipped' THEN error_code END) AS skip_reason,
    CASE WHEN status = 'skipped' THEN """ + category_sql(
        checks=["scoping", "reason_details"], codes=["step_skip_reason", "details_skip_reason", "error_code"],
        texts=["error_reason", "skip_step_text"]) + r""" END AS skip_category,
    scope_active, scope_assigned, scope_has_role, scope_filter_passed, import_kind,
    duration_ms, initiated_by,
    CASE WHEN status = 'skipped' THEN skip_step_text END AS skip_detail,
    raw, pos
FROM typed
""").replace("{lo}", f"TIMESTAMPTZ '{TIME_RANGE_YEARS[0]}-01-01 00:00:00+00'") \
    .replace("{hi}", f"TIMESTAMPTZ '{TIME_RANGE_YEARS[1] + 1}-01-01 00:00:00+00'")
