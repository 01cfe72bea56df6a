"""SQL that turns raw Graph ``provisioningObjectSummary`` JSON into the typed ``events`` columns.

Accepts the v1.0 shape and the beta shape (``action``, ``statusInfo``); ``servicePrincipal`` as an
object or as a one-element array; skips' reasons wherever Entra puts them. Parses the SCIM "Web
Response" (status, ``scimType``, detail) and Entra's retry count and next-retry time out of the
reason text. The raw JSON is kept unchanged so new questions need no re-download.
"""

from __future__ import annotations

# {source} is any relation with a JSON column ``raw`` and a VARCHAR ``pos`` (where the record came from).
NORMALISE_EVENTS = r"""
WITH src AS (SELECT raw::JSON AS raw, pos FROM ({source})),
parts AS (
    SELECT
        raw, pos,
        coalesce(raw->'$.provisioningStatusInfo', raw->'$.statusInfo') AS psi,
        coalesce(json_extract(raw, '$.provisioningSteps[*]'), []::JSON[]) AS steps,
        coalesce(json_extract(raw, '$.modifiedProperties[*]'), []::JSON[]) AS mods,
        coalesce(raw->'$.servicePrincipal[0]', raw->'$.servicePrincipal') AS sp
    FROM src
),
fields AS (
    SELECT
        raw, pos,
        raw->>'$.id' AS id,
        try_cast(raw->>'$.activityDateTime' AS TIMESTAMPTZ) AS activity_time,
        raw->>'$.tenantId' AS tenant_id,
        raw->>'$.jobId' AS job_id,
        raw->>'$.cycleId' AS cycle_id,
        raw->>'$.changeId' AS change_id,
        sp->>'$.id' AS service_principal_id,
        sp->>'$.displayName' AS service_principal_name,
        lower(coalesce(raw->>'$.provisioningAction', raw->>'$.action')) AS action,
        lower(psi->>'$.status') AS status,
        coalesce(psi->>'$.errorInformation.errorCode', psi->>'$.errorCode') AS error_code,
        coalesce(psi->>'$.errorInformation.errorCategory', psi->>'$.errorCategory') AS error_category,
        coalesce(psi->>'$.errorInformation.reason', psi->>'$.reason') AS error_reason,
        coalesce(psi->>'$.errorInformation.additionalDetails', psi->>'$.additionalDetails') AS error_details,
        coalesce(psi->>'$.errorInformation.recommendedAction', psi->>'$.recommendedAction')
            AS recommended_action,
        raw->>'$.sourceIdentity.id' AS source_id,
        raw->>'$.sourceIdentity.displayName' AS source_name,
        raw->>'$.sourceIdentity.identityType' AS source_type,
        nullif(raw->>'$.targetIdentity.id', '') AS target_id,
        nullif(raw->>'$.targetIdentity.displayName', '') AS target_name,
        raw->>'$.targetIdentity.identityType' AS target_type,
        coalesce(
            raw->>'$.sourceIdentity.details.UserPrincipalName',
            raw->>'$.sourceIdentity.details.userPrincipalName',
            list_filter(steps, lambda s: s->'$.details'->>'$.userPrincipalName' IS NOT NULL)[1]
                ->'$.details'->>'$.userPrincipalName'
        ) AS source_upn,
        list_filter(mods, lambda m: lower(m->>'$.displayName') = 'username')[1] AS mod_user_name,
        list_filter(mods, lambda m: lower(m->>'$.displayName') LIKE 'emails%work%'
            OR lower(m->>'$.displayName') IN ('mail', 'email', 'emails'))[1] AS mod_email,
        list_filter(steps, lambda s: s->>'$.provisioningStepType' = 'scoping')[1]->'$.details' AS scoping,
        list_filter(steps, lambda s: s->'$.details'->>'$.SkipReason' IS NOT NULL)[1]
            ->'$.details'->>'$.SkipReason' AS step_skip_reason,
        list_filter(steps, lambda s: s->>'$.provisioningStepType' = 'import')[1]->>'$.description'
            AS import_text,
        len(list_filter(steps, lambda s: s->>'$.name' = 'EntrySynchronizationSkip')) > 0 AS has_skip_step,
        try_cast(raw->>'$.durationInMilliseconds' AS BIGINT) AS duration_ms,
        raw->>'$.initiatedBy.displayName' AS initiated_by
    FROM parts
),
typed AS (
    SELECT
        *,
        coalesce(mod_user_name->>'$.newValue', mod_user_name->>'$.oldValue', source_upn) AS user_name,
        coalesce(mod_email->>'$.newValue', mod_email->>'$.oldValue') AS email,
        scoping->>'$."Active in the source system"' AS scope_active,
        scoping->>'$."Assigned to the application"' AS scope_assigned,
        scoping->>'$."User has the required role"' AS scope_has_role,
        scoping->>'$."Scoping filter evaluation passed"' AS scope_filter_passed,
        coalesce(step_skip_reason,
                 nullif(regexp_extract(error_details, 'SkipReason\W+(\w+)', 1), '')) AS skip_reason,
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
                 AS TIMESTAMPTZ) AS next_retry_at,
        CASE WHEN import_text LIKE 'Retrieved %' THEN 'full'
             WHEN import_text LIKE 'Received %' THEN 'delta' END AS import_kind
    FROM fields
)
SELECT
    id, activity_time, tenant_id, job_id, cycle_id, change_id,
    service_principal_id, service_principal_name, action, status,
    error_code, error_category, error_reason, error_details, recommended_action,
    http_status, scim_type, scim_detail, retry_count, next_retry_at,
    source_id, source_name, source_upn, source_type,
    target_id, target_name, target_type,
    user_name, email,
    CASE WHEN email LIKE '%@%' THEN lower(split_part(email, '@', -1)) END AS email_domain,
    skip_reason,
    CASE
        WHEN status IS DISTINCT FROM 'skipped' THEN NULL
        WHEN lower(scope_has_role) = 'false' THEN 'default_access'
        WHEN lower(scope_assigned) = 'false' THEN 'not_assigned'
        WHEN lower(scope_filter_passed) = 'false' THEN 'out_of_scope'
        WHEN lower(scope_active) = 'false' THEN 'inactive'
        WHEN error_code = 'RedundantExport' OR has_skip_step THEN 'no_change'
        WHEN error_reason ILIKE '%required role%' OR error_reason ILIKE '%default access%' THEN 'default_access'
        WHEN error_reason ILIKE '%not assigned%' THEN 'not_assigned'
        WHEN error_reason ILIKE '%scoping filter%' OR error_reason ILIKE '%out of scope%' THEN 'out_of_scope'
        WHEN error_reason ILIKE '%not active%' OR error_reason ILIKE '%disabled%' THEN 'inactive'
        ELSE 'other'
    END AS skip_category,
    scope_active, scope_assigned, scope_has_role, scope_filter_passed, import_kind,
    duration_ms, initiated_by, raw, pos
FROM typed
"""
