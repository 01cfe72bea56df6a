"""Named queries over the SCIM audit trail and its correlation with Entra's log (issue 4).

Exportable datasets: ``scim-requests``, ``scim-rejects``, ``correlation``. The rest feed the dashboard's
SCIM audit and identity pages. SCIM requests have no service principal, so they take the time window
($since, $until) only; correlation rows take the app filter through the event's service principal.
"""

from __future__ import annotations

from queries.catalog import q

SCIM_TIME = ("ts >= coalesce($since::TIMESTAMPTZ, '-infinity'::TIMESTAMPTZ) "
             "AND ts < coalesce($until::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ)")
# A correlation row's time is the event's (or, for SCIM-only rows, the request's).
CORRELATION_FILTER = (
    "coalesce(event_time, request_ts) >= coalesce($since::TIMESTAMPTZ, '-infinity'::TIMESTAMPTZ) "
    "AND coalesce(event_time, request_ts) < coalesce($until::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ) "
    "AND ($sps::VARCHAR[] IS NULL OR service_principal_id IS NULL "
    "OR list_contains($sps::VARCHAR[], service_principal_id))")

SCIM_REQUEST_COLUMNS = (
    "request_id", "ts", "method", "path", "query", "status", "operation", "resource_type", "resource_id",
    "external_id", "user_name", "scim_type", "error_detail", "duration_ms", "email_domains", "email_types",
    "active_after", "is_probe", "client_ip", "user_agent", "credential_id", "tenant", "source_file", "source_line")
SCIM_REJECT_COLUMNS = ("file", "line", "reason", "excerpt", "run_id", "rejected_at")
CORRELATION_COLUMNS = ("event_id", "request_id", "match_key", "match_class", "detail", "suspicious", "event_time",
                       "request_ts", "delta_s", "service_principal_id", "event_action", "event_status",
                       "request_method", "request_status", "request_operation", "user_name")

_REQUEST_SELECT = ", ".join(
    f"array_to_string({c}, ';') AS {c}" if c in ("email_domains", "email_types") else c
    for c in SCIM_REQUEST_COLUMNS)

QUERY_LIST = [
    # ------------------------------------------------------------------ exportable datasets
    q("scim-requests", "One row per SCIM request from the server's audit trail (lists joined with ';')", f"""
        SELECT {_REQUEST_SELECT}
        FROM scim_requests WHERE {SCIM_TIME}
        ORDER BY ts, request_id"""),
    q("scim-rejects", "Audit-trail lines that could not be loaded: file, line, reason, excerpt", """
        SELECT file, try_cast(regexp_extract(position, 'line (\\d+)', 1) AS BIGINT) AS line, reason, excerpt,
               run_id, rejected_at
        FROM ingest_rejects
        WHERE source = 'scim'
          AND rejected_at >= coalesce($since::TIMESTAMPTZ, '-infinity'::TIMESTAMPTZ)
          AND rejected_at < coalesce($until::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ)
        ORDER BY file, line NULLS FIRST, rejected_at"""),
    q("correlation", "Entra events joined to the SCIM requests they caused, and what did not join", f"""
        SELECT c.event_id, c.request_id, c.match_key, c.match_class, c.detail, c.suspicious, c.event_time,
               c.request_ts, c.delta_s, c.service_principal_id, e.action AS event_action,
               e.status AS event_status, r.method AS request_method, r.status AS request_status,
               r.operation AS request_operation, coalesce(r.user_name, e.user_name) AS user_name
        FROM correlation c
        LEFT JOIN events e ON e.id = c.event_id
        LEFT JOIN scim_requests r ON r.request_id = c.request_id
        WHERE {CORRELATION_FILTER.replace('event_time', 'c.event_time').replace('request_ts', 'c.request_ts')
               .replace('service_principal_id', 'c.service_principal_id')}
        ORDER BY coalesce(c.event_time, c.request_ts), c.event_id NULLS LAST, c.request_ts, c.request_id"""),
    # ------------------------------------------------------------------ SCIM audit page
    q("scim_kpis", "SCIM requests in the period: totals, errors, probes, latency, clients", f"""
        SELECT count(*) AS requests,
               count(*) FILTER (WHERE status >= 400) AS errors,
               count(*) FILTER (WHERE status IN (401, 403)) AS auth_failures,
               count(*) FILTER (WHERE is_probe) AS probes,
               count(*) FILTER (WHERE status = 429) AS throttled,
               quantile_cont(duration_ms, 0.95) AS p95_ms,
               count(DISTINCT coalesce(credential_id, user_agent, client_ip)) AS clients,
               min(ts) AS first_request, max(ts) AS last_request
        FROM scim_requests WHERE {SCIM_TIME}"""),
    q("scim_requests_over_time", "SCIM requests per hour ($bucket: hour or day) by operation and status", f"""
        SELECT date_trunc(coalesce($bucket::VARCHAR, 'hour'), ts) AS bucket, operation, status,
               (status // 100)::VARCHAR || 'xx' AS status_class, count(*) AS requests
        FROM scim_requests WHERE {SCIM_TIME}
        GROUP BY ALL ORDER BY bucket, operation, status"""),
    q("scim_latency", "SCIM server time per operation: p50, p95, p99 and max (ms)", f"""
        SELECT operation, count(*) AS requests,
               quantile_cont(duration_ms, 0.5) AS p50_ms, quantile_cont(duration_ms, 0.95) AS p95_ms,
               quantile_cont(duration_ms, 0.99) AS p99_ms, max(duration_ms) AS max_ms
        FROM scim_requests WHERE duration_ms IS NOT NULL AND {SCIM_TIME}
        GROUP BY operation ORDER BY requests DESC, operation"""),
    q("scim_errors_by_type", "SCIM error answers by status and scimType, with an example detail", f"""
        SELECT status, coalesce(scim_type, '(none)') AS scim_type, count(*) AS requests,
               count(DISTINCT user_name_lower) AS user_names, mode(error_detail) AS example_detail,
               min(ts) AS first_seen, max(ts) AS last_seen
        FROM scim_requests WHERE status >= 400 AND {SCIM_TIME}
        GROUP BY ALL ORDER BY requests DESC, status, scim_type"""),
    q("scim_auth_failures", "401/403 answers per UTC day and client (credential fingerprint / agent / IP)", f"""
        SELECT date_trunc('day', ts) AS day, status, credential_id, user_agent, client_ip, count(*) AS requests,
               min(ts) AS first_seen, max(ts) AS last_seen, mode(error_detail) AS example_detail
        FROM scim_requests WHERE status IN (401, 403) AND {SCIM_TIME}
        GROUP BY ALL ORDER BY day, requests DESC"""),
    q("scim_probes", "Health probes (userName filter on a random GUID) per UTC day and status", f"""
        SELECT date_trunc('day', ts) AS day, status, count(*) AS probes, tenant
        FROM scim_requests WHERE is_probe AND {SCIM_TIME}
        GROUP BY ALL ORDER BY day, status, tenant"""),
    q("correlation_class_counts", "Correlation rows by class and detail (suspicious ones flagged)", f"""
        SELECT match_class, coalesce(detail, '') AS detail, bool_or(suspicious) AS suspicious, count(*) AS rows
        FROM correlation WHERE {CORRELATION_FILTER}
        GROUP BY ALL ORDER BY match_class, detail"""),
    q("scim_unlogged_requests", "SCIM requests Entra never logged (probes excluded): writes first", f"""
        SELECT r.ts, r.request_id, c.detail, r.method, r.path, r.status, r.operation, r.user_name, r.resource_id,
               r.client_ip, r.user_agent, r.credential_id, r.tenant
        FROM correlation c JOIN scim_requests r ON r.request_id = c.request_id
        WHERE c.match_class = 'scim_only' AND c.detail <> 'probe' AND {CORRELATION_FILTER}
        ORDER BY c.suspicious DESC, r.ts, r.request_id"""),
    q("correlation_contradictions", "Events where Entra and the SCIM server disagree about the outcome", f"""
        SELECT c.event_time, c.detail, c.event_id, e.action, e.status AS event_status, e.error_code,
               c.request_id, r.method, r.path, r.status AS request_status, r.scim_type, r.error_detail,
               coalesce(r.user_name, e.user_name) AS user_name, c.service_principal_id
        FROM correlation c JOIN events e ON e.id = c.event_id JOIN scim_requests r ON r.request_id = c.request_id
        WHERE c.match_class = 'contradiction' AND {CORRELATION_FILTER.replace('service_principal_id',
                                                                              'c.service_principal_id')}
        ORDER BY c.event_time, c.event_id"""),
    q("entra_only_suspicious", "Successful Entra writes the SCIM server never saw", f"""
        SELECT c.event_time, e.action, e.status, e.user_name, e.source_id, e.target_id, c.event_id,
               c.service_principal_id
        FROM correlation c JOIN events e ON e.id = c.event_id
        WHERE c.match_class = 'entra_only' AND c.suspicious
          AND {CORRELATION_FILTER.replace('service_principal_id', 'c.service_principal_id')}
        ORDER BY c.event_time, c.event_id"""),
    q("scim_identity_timeline", "SCIM requests about one identity ($identity: userName, resource id or "
      "externalId), with the Entra event each joined", f"""
        SELECT r.ts, r.request_id, r.method, r.path, r.status, r.operation, r.user_name, r.resource_id,
               r.external_id, r.scim_type, r.error_detail, c.match_class, c.detail, c.event_id
        FROM scim_requests r LEFT JOIN correlation c ON c.request_id = r.request_id
        WHERE (r.user_name_lower = lower($identity::VARCHAR) OR r.resource_id = $identity::VARCHAR
               OR r.external_id = $identity::VARCHAR) AND {SCIM_TIME.replace('ts', 'r.ts')}
        ORDER BY r.ts, r.request_id"""),
    q("identity_scim_requests", "The SCIM server's side of one Entra identity ($source_id), in the columns of "
      "identity_events", f"""
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
          AND NOT r.is_probe AND {SCIM_TIME.replace('ts', 'r.ts')}
        ORDER BY r.ts, r.request_id"""),
]

# (name, columns, time column) for queries.datasets.DATASETS (the export contract).
EXPORT_DATASETS = [
    ("scim-requests", SCIM_REQUEST_COLUMNS, "ts"),
    ("scim-rejects", SCIM_REJECT_COLUMNS, "rejected_at"),
    ("correlation", CORRELATION_COLUMNS, "event_time"),
]
