"""The Event page's questions (issue 23): one provisioning event by its Graph id, as Entra's details pane shows it.

Everything is read from the stored event: its typed columns (ingest/event_sql.py) and its raw JSON, which the
ingest has already put in the Graph event's camelCase spelling whatever the wrapper (ingest/shapes.py: Azure
Monitor, Log Analytics, PowerShell), so the steps and modified properties are read here with one structure. Each
query has a plain reference in :mod:`queries.reference` (``tests/test_event_page.py`` and the oracle hold them
equal).
"""

from __future__ import annotations

import json

from ingest.skip_reasons import ADVICE_VALUES
from ingest.summaries.events import RECOMMENDED_ACTION_SQL
from queries.named import q

# A provisioning step as Graph writes it (provisioningStep: name, provisioningStepType, status, description,
# details: a free-form map kept as JSON text).
STEP_STRUCTURE = json.dumps([{"name": "VARCHAR", "provisioningStepType": "VARCHAR", "status": "VARCHAR",
                              "description": "VARCHAR", "details": "JSON"}]).replace("'", "''")
MODIFIED_STRUCTURE = json.dumps([{"displayName": "VARCHAR", "oldValue": "VARCHAR",
                                  "newValue": "VARCHAR"}]).replace("'", "''")

# The enterprise app's application (client) id: Graph puts it in the details of the system that is the app (the
# target of an outbound job, the source of an inbound one), next to the service principal's id.
_APP_ID = """coalesce(
    CASE WHEN e.raw->>'$.targetSystem.details.ServicePrincipalId' = e.service_principal_id
         THEN e.raw->>'$.targetSystem.details.ApplicationId' END,
    CASE WHEN e.raw->>'$.sourceSystem.details.ServicePrincipalId' = e.service_principal_id
         THEN e.raw->>'$.sourceSystem.details.ApplicationId' END)"""

# The columns of event_detail, in order (the reference spells the same list).
DETAIL_COLUMNS = (
    "id, activity_time, status, action, error_code, error_category, error_reason, error_details, "
    "entra_recommended_action, recommended_action, http_status, scim_type, scim_detail, retry_count, next_retry_at, "
    "skip_category, skip_reason, skip_detail, source_id, source_name, source_upn, source_type, source_system, "
    "target_id, target_name, target_type, target_system, user_name, email, tenant_id, service_principal_id, "
    "service_principal_name, app_id, job_id, cycle_id, change_id, duration_ms, initiated_by, initiator_type, raw")

QUERY_LIST = [
    # recommended_action: Microsoft's where Entra gives one, else ours (a failure's by error, a skip's by category)
    q("event_detail", "One event by its Graph id ($event_id): status, error and parsed SCIM reply, what to do, "
      "source and target identity, the ids, and the raw JSON (no row: not in this database)", f"""
        SELECT e.id, e.activity_time, e.status, e.action, e.error_code, e.error_category, e.error_reason,
               e.error_details, e.recommended_action AS entra_recommended_action,
               CASE WHEN e.status = 'skipped'
                        THEN coalesce(nullif(e.recommended_action, ''), skip_advice.what_to_do)
                    WHEN e.status IN ('failure', 'warning') THEN {RECOMMENDED_ACTION_SQL}
                    ELSE nullif(e.recommended_action, '') END AS recommended_action,
               e.http_status, e.scim_type, e.scim_detail, e.retry_count, e.next_retry_at,
               e.skip_category, e.skip_reason, e.skip_detail,
               e.source_id, e.source_name, e.source_upn, e.source_type,
               e.raw->>'$.sourceSystem.displayName' AS source_system,
               e.target_id, e.target_name, e.target_type, e.raw->>'$.targetSystem.displayName' AS target_system,
               e.user_name, e.email, e.tenant_id, e.service_principal_id, e.service_principal_name,
               {_APP_ID} AS app_id, e.job_id, e.cycle_id, e.change_id, e.duration_ms, e.initiated_by,
               e.raw->>'$.initiatedBy.initiatorType' AS initiator_type, e.raw::VARCHAR AS raw
        FROM events e LEFT JOIN {ADVICE_VALUES} ON skip_advice.skip_category = e.skip_category
        WHERE e.id = $event_id::VARCHAR"""),
    q("event_steps", "The event's provisioning steps in Entra's order: type, name, status, description, details", f"""
        WITH s AS (
            SELECT json_transform(raw->'$.provisioningSteps', '{STEP_STRUCTURE}') AS steps
            FROM events WHERE id = $event_id::VARCHAR),
        n AS (SELECT steps, unnest(range(1, coalesce(len(steps), 0) + 1)) AS step FROM s)
        SELECT step, steps[step].provisioningStepType AS step_type, steps[step].name AS name,
               steps[step].status AS status, steps[step].description AS description,
               steps[step].details::VARCHAR AS details
        FROM n ORDER BY step"""),
    q("event_modified_properties", "The event's modified properties in Entra's order: old and new value", f"""
        WITH s AS (
            SELECT json_transform(raw->'$.modifiedProperties', '{MODIFIED_STRUCTURE}') AS mods
            FROM events WHERE id = $event_id::VARCHAR),
        n AS (SELECT mods, unnest(range(1, coalesce(len(mods), 0) + 1)) AS position FROM s)
        SELECT position, mods[position].displayName AS property, mods[position].oldValue AS old_value,
               mods[position].newValue AS new_value
        FROM n ORDER BY position"""),
    q("event_scim_requests", "The SCIM requests the correlation matched to the event ($event_id), oldest first", """
        SELECT r.ts, r.method, r.path, r.status, r.operation, r.scim_type, r.error_detail, r.user_name,
               c.match_class, c.detail, c.delta_s, r.request_id
        FROM correlation c JOIN scim_requests r ON r.request_id = c.request_id
        WHERE c.event_id = $event_id::VARCHAR
        ORDER BY r.ts, r.request_id"""),
]
