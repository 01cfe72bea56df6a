"""SQL that turns raw Graph ``directoryAudit`` JSON (``/auditLogs/directoryAudits``, the provisioning service's
entries) into the typed ``directory_audits`` columns, and the words that classify an entry.

Shapes seen in public material (none of them a quarantine entry; the activity names are Microsoft's audit-activity
reference, entra-docs ``reference-audit-activities.md``, "Account provisioning", category ``ProvisioningManagement``;
an older list gives category Application Management and activities Administration, Quarantine, ...):
- ``targetResources[].type`` is ``ServicePrincipal`` for the app (a Chronicle parser's sample), spelt ``Type`` in
  Graph's own example; a live graph2otel sample has a target with only a ``displayName``. Keys are read both ways.
- ``initiatedBy`` holds a ``user`` (id, displayName, userPrincipalName) or an ``app`` (appId, displayName,
  servicePrincipalId, servicePrincipalName).
- Where the job id sits is not documented: an ``additionalDetails`` entry whose key names a job, else a
  target resource whose type names a job, else the first text in the record shaped like a job id
  (``<template>.<32 hex>.<guid>``).
"""

from __future__ import annotations

# Microsoft's spelling of the provisioning service in the directory audit log (the audit-activities reference,
# "Account provisioning"; graph2otel's live sample and Chronicle's: "Account Provisioning").
PROVISIONING_SERVICE = "Account Provisioning"

# The activities that are configuration changes (who changed what, drawn on the Sync cycles timeline), by kind.
# Lower-case activity name -> kind. "Administration" is the older list's name for the same group.
CONFIG_ACTIVITIES: dict[str, str] = {
    "add provisioning configuration": "configuration added",
    "delete provisioning configuration": "configuration deleted",
    "disable/pause provisioning configuration": "paused",
    "enable/restart provisioning configuration": "restarted",
    "enable/start provisioning configuration": "started",
    "update attribute mappings or scope": "mappings or scope",
    "update provisioning setting or credentials": "settings or credentials",
    "administration": "administration",
}
# Activities after which the job is out of quarantine: Microsoft's quarantine doc says a restart "removes the app
# from quarantine" (entra-docs application-provisioning-quarantine-status.md).
QUARANTINE_CLEARING = ("enable/restart provisioning configuration", "enable/start provisioning configuration")
# A Quarantine entry whose text says the job left quarantine (the shape is not documented: matched on words).
RELEASE_WORDS = r"(?i)(released|removed from quarantine|out of quarantine|left quarantine|exited quarantine|cleared)"

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
JOB_ID_PATTERN = r"[A-Za-z0-9]+\.[0-9a-fA-F]{32}\." + _GUID

_TARGETS = "coalesce(try_cast(raw->'$.targetResources' AS JSON[]), [])"
_DETAILS = "coalesce(try_cast(raw->'$.additionalDetails' AS JSON[]), [])"
_TYPE = "lower(coalesce(t->>'$.type', t->>'$.Type', ''))"
_SP_TARGET = f"list_filter({_TARGETS}, lambda t: {_TYPE} = 'serviceprincipal')[1]"
_JOB_DETAIL = (f"list_filter({_DETAILS}, lambda d: regexp_matches(lower(coalesce(d->>'$.key', d->>'$.Key', '')), "
               "'job ?id|jobid|synchronizationjob'))[1]")
_JOB_TARGET = f"list_filter({_TARGETS}, lambda t: {_TYPE} LIKE '%job%')[1]"

# {source}: a relation with a JSON column ``raw`` and a VARCHAR ``pos``.
NORMALISE_AUDITS = f"""
SELECT raw->>'$.id' AS id,
       try_cast(raw->>'$.activityDateTime' AS TIMESTAMPTZ) AS activity_time,
       raw->>'$.activityDisplayName' AS activity_display_name,
       raw->>'$.category' AS category,
       raw->>'$.result' AS result,
       raw->>'$.resultReason' AS result_reason,
       raw->>'$.loggedByService' AS logged_by_service,
       raw->>'$.operationType' AS operation_type,
       raw->>'$.correlationId' AS correlation_id,
       CASE WHEN json_type(raw, '$.initiatedBy.user') = 'OBJECT' THEN 'user'
            WHEN json_type(raw, '$.initiatedBy.app') = 'OBJECT' THEN 'app' END AS initiated_by_type,
       coalesce(raw->>'$.initiatedBy.user.id', raw->>'$.initiatedBy.app.servicePrincipalId',
                raw->>'$.initiatedBy.app.appId') AS initiated_by_id,
       coalesce(raw->>'$.initiatedBy.user.userPrincipalName', raw->>'$.initiatedBy.user.displayName',
                raw->>'$.initiatedBy.app.displayName', raw->>'$.initiatedBy.app.servicePrincipalName')
           AS initiated_by_name,
       raw->'$.initiatedBy' AS initiated_by,
       {_SP_TARGET}->>'$.id' AS service_principal_id,
       coalesce({_SP_TARGET}->>'$.displayName', {_TARGETS}[1]->>'$.displayName') AS service_principal_name,
       coalesce({_JOB_DETAIL}->>'$.value', {_JOB_DETAIL}->>'$.Value', {_JOB_TARGET}->>'$.id',
                nullif(regexp_extract(raw::VARCHAR, '{JOB_ID_PATTERN}'), '')) AS job_id,
       raw->'$.targetResources' AS target_resources,
       raw->'$.additionalDetails' AS additional_details,
       raw, pos
FROM ({{source}})"""

# The columns NORMALISE_AUDITS yields that are stored (all but ``pos``), in the table's order.
LOADED_COLUMNS = ["id", "activity_time", "activity_display_name", "category", "result", "result_reason",
                  "logged_by_service", "operation_type", "correlation_id", "initiated_by_type", "initiated_by_id",
                  "initiated_by_name", "initiated_by", "service_principal_id", "service_principal_name", "job_id",
                  "target_resources", "additional_details", "raw"]
