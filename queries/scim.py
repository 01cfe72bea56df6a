"""Named queries over the SCIM audit trail and its correlation with Entra's log (issue 4).

Exportable datasets: ``scim-requests``, ``scim-rejects``, ``correlation``. The rest feed the dashboard's
SCIM audit and identity pages. SCIM requests have no service principal, so they take the time window
($since, $until) only; correlation rows take the app filter through the event's service principal.
"""

from __future__ import annotations

from queries.filters import _FULL_FROM, _FULL_TO, DAY_OF_HOUR, scope_filter, time_filter
from queries.named import q


def scim_time(alias: str = "") -> str:
    """The shared time window on a SCIM request's ``ts`` (``alias``: the table's alias, if any)."""
    return time_filter(f"{alias + '.' if alias else ''}ts")


def correlation_filter(alias: str = "") -> str:
    """The shared filters on a correlation row: its time is the event's (or, for SCIM-only rows, the request's);
    a row with no app passes any app filter."""
    a = alias + "." if alias else ""
    return (time_filter(f"coalesce({a}event_time, {a}request_ts)") + " AND "
            + scope_filter(alias, unknown_app_passes=True))


SCIM_TIME = scim_time()
CORRELATION_FILTER = correlation_filter()

# Requests for the time window from the store's hourly summaries (ingest/summaries/scim.py): whole UTC hours
# inside [since, until) from derived_scim_hours, the ragged edges from scim_requests, so any window is exact.
_SCIM_HOUR_KEYS = "operation, status, is_probe, tenant, credential_id, user_agent, client_ip, scim_type, error_detail"
_HOUR_OF_TS = "make_timestamptz(epoch_us(ts) // 3600000000 * 3600000000)"
# Whether the window has ragged edges at all: parameters only, so DuckDB folds it and skips the edge scan.
_RAGGED = (f"(($since::TIMESTAMPTZ IS NOT NULL AND $since::TIMESTAMPTZ <> {_FULL_FROM}) "
           f"OR ($until::TIMESTAMPTZ IS NOT NULL AND $until::TIMESTAMPTZ <> {_FULL_TO}))")
_EDGES = f"{_RAGGED} AND {SCIM_TIME} AND (ts < {_FULL_FROM} OR ts >= {_FULL_TO})"
SCIM_HOURS = f"""(
    SELECT hour, {_SCIM_HOUR_KEYS}, requests, first_ts, last_ts
    FROM derived_scim_hours WHERE hour >= {_FULL_FROM} AND hour < {_FULL_TO}
    UNION ALL
    SELECT {_HOUR_OF_TS}, {_SCIM_HOUR_KEYS}, 1, ts, ts FROM scim_requests WHERE {_EDGES}
)"""
# Requests with a duration per (hour, operation, duration_ms): a histogram, exact for any window as above.
SCIM_LATENCY = f"""(
    SELECT hour, operation, duration_ms, requests
    FROM derived_scim_latency WHERE hour >= {_FULL_FROM} AND hour < {_FULL_TO}
    UNION ALL
    SELECT {_HOUR_OF_TS}, operation, duration_ms, 1 FROM scim_requests
    WHERE duration_ms IS NOT NULL AND {_EDGES}
)"""
_BUCKET = "coalesce($bucket::VARCHAR, 'hour')"
_BUCKET_OF_HOURS = f"{_BUCKET} IN ('hour', 'day', 'week', 'month', 'quarter', 'year')"
_ALL_TIME = "($since::TIMESTAMPTZ IS NULL AND $until::TIMESTAMPTZ IS NULL)"
_SPS_OR_NONE = scope_filter(unknown_app_passes=True)
# Correlation rows per (hour, class, detail, app, suspicious) for the shared filters, exact for any window.
_CORRELATION_TIME = "coalesce(event_time, request_ts)"
CORRELATION_HOURS = f"""(
    SELECT hour, match_class, detail, service_principal_id, suspicious, rows
    FROM derived_correlation_hours WHERE hour >= {_FULL_FROM} AND hour < {_FULL_TO} AND {_SPS_OR_NONE}
    UNION ALL
    SELECT NULL::TIMESTAMPTZ, match_class, detail, service_principal_id, suspicious, 1 FROM correlation
    WHERE {_RAGGED} AND {CORRELATION_FILTER}
      AND ({_CORRELATION_TIME} < {_FULL_FROM} OR {_CORRELATION_TIME} >= {_FULL_TO})
)"""


def weighted_quantiles(histogram: str, group: str, quantiles: dict[str, float]) -> str:
    """SQL giving, per ``group`` (a column or ``'all'``), ``quantile_cont(v, q)`` for each named q
    exactly as DuckDB computes it over the expanded values, from ``histogram`` (columns: the group,
    ``v``, ``n`` = how many times v occurs): position rn = (n - 1) * q, linear between the values at
    floor(rn) and ceil(rn) with DuckDB's arithmetic (lo * (1 - d) + hi * d), so the doubles are
    bit-identical. The value at position i is the smallest v whose running count exceeds i.
    Columns: g (the group), total (the value count), max_v and one column per name."""
    picks, finals = [], []
    for i, (name, quantile) in enumerate(quantiles.items()):
        rn = f"((total - 1) * {quantile!r}::DOUBLE)"
        picks.append(f"any_value({rn}) AS rn{i}, min(v) FILTER (WHERE cum > floor({rn})) AS lo{i}, "
                     f"min(v) FILTER (WHERE cum > ceil({rn})) AS hi{i}")
        finals.append(f"CASE WHEN floor(rn{i}) = ceil(rn{i}) THEN lo{i} "
                      f"ELSE lo{i} * (1 - (rn{i} - floor(rn{i}))) + hi{i} * (rn{i} - floor(rn{i})) END AS {name}")
    return f"""(WITH h AS (SELECT {group} AS g, v, sum(n)::BIGINT AS n FROM {histogram} GROUP BY ALL),
        c AS (SELECT g, v, sum(n) OVER (PARTITION BY g ORDER BY v) AS cum,
                     (sum(n) OVER (PARTITION BY g))::BIGINT AS total FROM h)
        SELECT g, total, max_v, {", ".join(finals)}
        FROM (SELECT g, any_value(total) AS total, max(v) AS max_v, {", ".join(picks)} FROM c GROUP BY g))"""


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

# One request is about $identity: its userName (case-insensitive), resource id or externalId.
_IS_IDENTITY = ("(user_name_lower = lower($identity::VARCHAR) OR resource_id = $identity::VARCHAR "
                "OR external_id = $identity::VARCHAR)")

QUERY_LIST = [
    # ------------------------------------------------------------------ exportable datasets
    q("scim-requests", "One row per SCIM request from the server's audit trail (lists joined with ';')", f"""
        SELECT {_REQUEST_SELECT}
        FROM scim_requests WHERE {SCIM_TIME}
        ORDER BY ts, request_id"""),
    q("scim-rejects", "Audit-trail lines that could not be loaded: file, line, reason, excerpt", f"""
        SELECT file, try_cast(regexp_extract(position, 'line (\\d+)', 1) AS BIGINT) AS line, reason, excerpt,
               run_id, rejected_at
        FROM ingest_rejects
        WHERE source = 'scim'
          AND {time_filter('rejected_at')}
        ORDER BY file, line NULLS FIRST, rejected_at"""),
    q("correlation", "Entra events joined to the SCIM requests they caused, and what did not join", f"""
        SELECT c.event_id, c.request_id, c.match_key, c.match_class, c.detail, c.suspicious, c.event_time,
               c.request_ts, c.delta_s, c.service_principal_id, e.action AS event_action,
               e.status AS event_status, r.method AS request_method, r.status AS request_status,
               r.operation AS request_operation, coalesce(r.user_name, e.user_name) AS user_name
        FROM correlation c
        LEFT JOIN events e ON e.id = c.event_id
        LEFT JOIN scim_requests r ON r.request_id = c.request_id
        WHERE {correlation_filter('c')}
        ORDER BY coalesce(c.event_time, c.request_ts), c.event_id NULLS LAST, c.request_ts, c.request_id"""),
    # ------------------------------------------------------------------ SCIM audit page
    q("scim_kpis", "SCIM requests in the period: totals, errors, probes, latency, clients", f"""
        SELECT coalesce(sum(requests), 0)::BIGINT AS requests,
               coalesce(sum(requests) FILTER (WHERE status >= 400), 0)::BIGINT AS errors,
               coalesce(sum(requests) FILTER (WHERE status IN (401, 403)), 0)::BIGINT AS auth_failures,
               coalesce(sum(requests) FILTER (WHERE is_probe), 0)::BIGINT AS probes,
               coalesce(sum(requests) FILTER (WHERE status = 429), 0)::BIGINT AS throttled,
               (SELECT p95_ms FROM {weighted_quantiles(f"(SELECT duration_ms AS v, requests AS n FROM {SCIM_LATENCY})",
                                                        "'all'", {"p95_ms": 0.95})}) AS p95_ms,
               count(DISTINCT coalesce(credential_id, user_agent, client_ip)) AS clients,
               min(first_ts) AS first_request, max(last_ts) AS last_request
        FROM {SCIM_HOURS} AS h"""),
    q("scim_requests_over_time", "SCIM requests per hour ($bucket: hour or day) by operation and status", f"""
        SELECT bucket, operation, status, (status // 100)::VARCHAR || 'xx' AS status_class,
               sum(requests)::BIGINT AS requests
        FROM (SELECT date_trunc({_BUCKET}, hour) AS bucket, operation, status, requests
              FROM {SCIM_HOURS} AS h WHERE {_BUCKET_OF_HOURS}
              UNION ALL  -- buckets finer than an hour: from the requests
              SELECT date_trunc({_BUCKET}, ts), operation, status, 1
              FROM scim_requests WHERE NOT {_BUCKET_OF_HOURS} AND {SCIM_TIME})
        GROUP BY ALL ORDER BY bucket, operation, status"""),
    q("scim_latency", "SCIM server time per operation: p50, p95, p99 and max (ms)", f"""
        SELECT g AS operation, total AS requests, p50_ms, p95_ms, p99_ms, max_v AS max_ms
        FROM {weighted_quantiles(f"(SELECT operation, duration_ms AS v, requests AS n FROM {SCIM_LATENCY})",
                                 "operation", {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99})}
        ORDER BY requests DESC, operation"""),
    # mode(error_detail) from the summaries: the most frequent non-NULL detail (ties: the earliest seen).
    q("scim_errors_by_type", "SCIM error answers by status and scimType, with an example detail", f"""
        WITH d AS (SELECT status, scim_type, error_detail, sum(requests) AS n, min(first_ts) AS first_seen,
                          max(last_ts) AS last_seen
                   FROM {SCIM_HOURS} AS h WHERE status >= 400 GROUP BY ALL),
        g AS (SELECT status, scim_type, sum(n)::BIGINT AS requests,
                     arg_max(error_detail, (n, -epoch_us(first_seen))) FILTER (WHERE error_detail IS NOT NULL)
                         AS example_detail,
                     min(first_seen) AS first_seen, max(last_seen) AS last_seen
              FROM d GROUP BY ALL),
        u AS (SELECT status, scim_type, count(*) AS user_names FROM derived_scim_error_users
              WHERE {_ALL_TIME} GROUP BY ALL
              UNION ALL
              SELECT status, scim_type, count(DISTINCT user_name_lower) FROM scim_requests
              WHERE status >= 400 AND {SCIM_TIME} AND NOT {_ALL_TIME} GROUP BY ALL)
        SELECT g.status, coalesce(g.scim_type, '(none)') AS scim_type, g.requests,
               coalesce(u.user_names, 0) AS user_names, g.example_detail, g.first_seen, g.last_seen
        FROM g LEFT JOIN u ON u.status = g.status AND u.scim_type IS NOT DISTINCT FROM g.scim_type
        ORDER BY g.requests DESC, g.status, scim_type"""),
    q("scim_auth_failures", "401/403 answers per UTC day and client (credential fingerprint / agent / IP)", f"""
        WITH d AS (SELECT {DAY_OF_HOUR} AS day, status, credential_id, user_agent, client_ip, error_detail,
                          sum(requests) AS n, min(first_ts) AS first_seen, max(last_ts) AS last_seen
                   FROM {SCIM_HOURS} AS h WHERE status IN (401, 403) GROUP BY ALL)
        SELECT day, status, credential_id, user_agent, client_ip, sum(n)::BIGINT AS requests,
               min(first_seen) AS first_seen, max(last_seen) AS last_seen,
               arg_max(error_detail, (n, -epoch_us(first_seen))) FILTER (WHERE error_detail IS NOT NULL)
                   AS example_detail
        FROM d GROUP BY ALL ORDER BY day, requests DESC"""),
    q("scim_probes", "Health probes (userName filter on a random GUID) per UTC day and status", f"""
        SELECT {DAY_OF_HOUR} AS day, status, sum(requests)::BIGINT AS probes, tenant
        FROM {SCIM_HOURS} AS h WHERE is_probe
        GROUP BY ALL ORDER BY day, status, tenant"""),
    q("correlation_class_counts", "Correlation rows by class and detail (suspicious ones flagged)", f"""
        SELECT match_class, coalesce(detail, '') AS detail, bool_or(suspicious) AS suspicious,
               sum(rows)::BIGINT AS rows
        FROM {CORRELATION_HOURS} AS h
        GROUP BY ALL ORDER BY match_class, detail"""),
    # The two lists below are kept by the store with the correlation (ingest/scim/derived.py).
    q("scim_unlogged_requests", "SCIM requests Entra never logged (probes excluded): writes first", f"""
        SELECT ts, request_id, detail, method, path, status, operation, user_name, resource_id,
               client_ip, user_agent, credential_id, tenant
        FROM derived_scim_unlogged WHERE {CORRELATION_FILTER}
        ORDER BY suspicious DESC, ts, request_id"""),
    # What the SCIM audit page shows of that list (85k rows at 5M events): the first $limit rows in the same
    # order (a top-N), and the count its caption and headline state; the download is the full query above.
    q("scim_unlogged_requests_first", "The first $limit rows of scim_unlogged_requests (writes first)", f"""
        SELECT ts, request_id, detail, method, path, status, operation, user_name, resource_id,
               client_ip, user_agent, credential_id, tenant
        FROM derived_scim_unlogged WHERE {CORRELATION_FILTER}
        ORDER BY suspicious DESC, ts, request_id LIMIT $limit"""),
    q("scim_unlogged_count", "How many SCIM requests Entra never logged (probes excluded)", f"""
        SELECT count(*) AS requests FROM derived_scim_unlogged WHERE {CORRELATION_FILTER}"""),
    q("correlation_contradictions", "Events where Entra and the SCIM server disagree about the outcome", f"""
        SELECT event_time, detail, event_id, action, event_status, error_code, request_id, method, path,
               request_status, scim_type, error_detail, user_name, service_principal_id
        FROM derived_correlation_contradictions WHERE {CORRELATION_FILTER}
        ORDER BY event_time, event_id"""),
    q("entra_only_suspicious", "Successful Entra writes the SCIM server never saw", f"""
        SELECT c.event_time, e.action, e.status, e.user_name, e.source_id, e.target_id, c.event_id,
               c.service_principal_id
        FROM correlation c JOIN events e ON e.id = c.event_id
        WHERE c.match_class = 'entra_only' AND c.suspicious
          AND {correlation_filter('c')}
        ORDER BY c.event_time, c.event_id"""),
    # Per-identity lookups read derived_scim_requests_by_user (ingest/summaries/scim.py): every request, sorted by
    # lower-case userName, so the identity's requests are one range that zone maps find (at 5M events, 2 of 74 row
    # groups) instead of ~100 rows fetched from as many row groups of the time-ordered scim_requests. A resource id or
    # externalId is first turned into the userNames it was sent with (derived_scim_key_user_names); requests without a
    # userName sort last, and DuckDB skips that range when the statistics say there are none. The correlation side comes
    # from correlation_requests, keyed by request id and sorted the same way, so the same userNames' range is one or
    # two row groups (joining correlation on the text request_id read that whole column: 513 ms p95 at 5M).
    q("scim_identity_timeline", "SCIM requests about one identity ($identity: userName, resource id or "
      "externalId), with the Entra event each joined", f"""
        WITH names AS (
            SELECT lower($identity::VARCHAR) AS user_name_lower
            UNION SELECT user_name_lower FROM derived_scim_key_user_names WHERE key = $identity::VARCHAR),
        r AS MATERIALIZED (
            SELECT * FROM derived_scim_requests_by_user
            WHERE user_name_lower IN (SELECT user_name_lower FROM names) AND {_IS_IDENTITY}
            UNION ALL
            SELECT * FROM derived_scim_requests_by_user WHERE user_name_lower IS NULL AND {_IS_IDENTITY}),
        c AS (
            SELECT * FROM correlation_requests WHERE user_name_lower IN (SELECT user_name_lower FROM names)
            UNION ALL
            SELECT * FROM correlation_requests WHERE user_name_lower IS NULL
              AND request_id IN (SELECT request_id FROM r WHERE user_name_lower IS NULL))
        SELECT r.ts, r.request_id, r.method, r.path, r.status, r.operation, r.user_name, r.resource_id,
               r.external_id, r.scim_type, r.error_detail, c.match_class, c.detail, c.event_id
        FROM r LEFT JOIN c ON c.request_id = r.request_id
        WHERE {scim_time('r')}
        ORDER BY r.ts, r.request_id"""),
    # The identity's requests by the keys the correlation joins on (so a request the correlation paired with
    # one of its events is among them: the pair shares one of these keys with the event). The identity's target
    # ids and userNames come from derived_identity_names (the same pairs as its events hold, sorted
    # by source id, so one row group) instead of its events, which lie in every row group of a
    # time-ordered store; the requests from derived_scim_requests_by_user, as above.
    q("identity_scim_requests", "The SCIM server's side of one Entra identity ($source_id), in the columns of "
      "identity_events", f"""
        WITH ev AS MATERIALIZED (SELECT target_id, lower(user_name) AS user_name_lower FROM derived_identity_names
                                 WHERE source_id = $source_id::VARCHAR),
        names AS (
            SELECT user_name_lower FROM ev WHERE user_name_lower IS NOT NULL
            UNION SELECT user_name_lower FROM derived_scim_key_user_names WHERE key = $source_id::VARCHAR
            UNION SELECT k.user_name_lower FROM derived_scim_key_user_names k SEMI JOIN ev ON ev.target_id = k.key),
        r AS (
            SELECT * FROM derived_scim_requests_by_user
            WHERE user_name_lower IN (SELECT user_name_lower FROM names)
              AND (external_id = $source_id::VARCHAR OR resource_id IN (SELECT target_id FROM ev)
                   OR user_name_lower IN (SELECT user_name_lower FROM ev))
            UNION ALL
            SELECT * FROM derived_scim_requests_by_user
            WHERE user_name_lower IS NULL
              AND (external_id = $source_id::VARCHAR OR resource_id IN (SELECT target_id FROM ev)))
        SELECT r.ts AS time, 'scim' AS source, r.tenant AS app, r.operation AS action,
               CASE WHEN r.status >= 400 THEN 'failure' ELSE 'success' END AS status,
               r.method || ' ' || r.status::VARCHAR || coalesce(' ' || r.scim_type, '')
                   || coalesce(': ' || r.error_detail, '') AS detail,
               r.user_name, r.resource_id AS target_id, NULL::VARCHAR AS cycle_id, r.request_id AS ref
        FROM r
        WHERE NOT r.is_probe AND {scim_time('r')}
        ORDER BY r.ts, r.request_id"""),
]

# (name, columns, time column) for queries.datasets.DATASETS (the export contract).
EXPORT_DATASETS = [
    ("scim-requests", SCIM_REQUEST_COLUMNS, "ts"),
    ("scim-rejects", SCIM_REJECT_COLUMNS, "rejected_at"),
    ("correlation", CORRELATION_COLUMNS, "event_time"),
]
