"""The summaries of the SCIM audit trail and of its correlation with Entra's log (declarations for
:mod:`ingest.summaries`). Their SELECTs read a relation ``{src}`` of ``scim_requests`` rows: a rebuild reads the
whole table, a SCIM load batch only its own rows (:func:`ingest.scim.derived.add_scim_batch`); the correlation
ones are rebuilt whole in the correlation's transaction (:func:`ingest.scim.derived.refresh_correlation`).

- ``derived_scim_hours`` / ``derived_scim_latency``: requests per UTC hour and their dimensions / per
  ``duration_ms`` value (a histogram: exact percentiles for any window of whole hours).
- ``derived_scim_error_users``: the distinct (status, scimType, lower-case userName) of error answers.
- ``derived_scim_error_answers`` and ``derived_scim_error_keys``: the 400 and 409 answers a violation can cite as
  SCIM evidence, and per (status, key kind, key) the first and last of them.
- ``derived_scim_requests_by_user``: every request in the columns the per-identity lookups and the correlation
  read, sorted by lower-case userName (one identity's requests sit in one or two row groups); batches append, and
  past a quarter of unsorted rows it is rewritten sorted (``RESORT`` in ingest/scim/derived.py).
- ``derived_scim_key_user_names``: the lower-case userNames each resource id and externalId was sent with, sorted by
  key, so a lookup by id finds the userNames to read.
- ``correlation_requests``: each request's correlation result, keyed by request id and sorted by lower-case
  userName (the per-identity timeline reads one identity's range).
- ``derived_correlation_hours``, ``derived_scim_unlogged``, ``derived_correlation_contradictions``: correlation rows
  per hour and class, the SCIM-only requests, and the contradictions with both sides' columns.
"""

from __future__ import annotations

from ingest.summaries import HOUR_SQL, Summary

HOUR_OF_TS = HOUR_SQL.format(col="ts")
HOUR_KEYS = ("operation", "status", "is_probe", "tenant", "credential_id", "user_agent", "client_ip",
             "scim_type", "error_detail")
_KEYS = ", ".join(HOUR_KEYS)

HOURS_SELECT = f"""SELECT {HOUR_OF_TS} AS hour, {_KEYS}, count(*) AS requests, min(ts) AS first_ts,
       max(ts) AS last_ts
FROM {{src}} GROUP BY ALL"""
LATENCY_SELECT = f"""SELECT {HOUR_OF_TS} AS hour, operation, duration_ms, count(*) AS requests
FROM {{src}} WHERE duration_ms IS NOT NULL GROUP BY ALL"""
ERROR_USERS_SELECT = """SELECT DISTINCT status, scim_type, user_name_lower
FROM {src} WHERE status >= 400 AND user_name_lower IS NOT NULL"""
# lower(user_name) by DuckDB (not the parser's user_name_lower) so the violations join compares exactly as before.
ERROR_ANSWERS_SELECT = """SELECT ts, status, external_id, lower(user_name) AS user_name_lower
FROM {src} WHERE status IN (400, 409)"""
# Per key of those answers (from a relation {src} of derived_scim_error_answers rows): first and last answer.
ERROR_KEYS_SELECT = """SELECT status, 'external_id' AS key_kind, external_id AS key, min(ts) AS first_ts,
       max(ts) AS last_ts, count(*) AS answers
FROM {src} WHERE external_id IS NOT NULL GROUP BY ALL
UNION ALL
SELECT status, 'user_name', user_name_lower, min(ts), max(ts), count(*)
FROM {src} WHERE user_name_lower IS NOT NULL GROUP BY ALL"""
BY_USER_COLUMNS = ("user_name_lower", "ts", "request_id", "method", "path", "status", "operation", "user_name",
                   "resource_id", "external_id", "scim_type", "error_detail", "tenant", "is_probe", "credential_id",
                   "user_agent", "client_ip")
BY_USER_SELECT = f"SELECT {', '.join(BY_USER_COLUMNS)} FROM {{src}}"
BY_USER_ORDER = "user_name_lower NULLS LAST, ts, request_id"
KEY_USER_NAMES_SELECT = """SELECT DISTINCT key, user_name_lower FROM (
    SELECT resource_id AS key, user_name_lower FROM {src} WHERE resource_id IS NOT NULL
    UNION ALL SELECT external_id, user_name_lower FROM {src} WHERE external_id IS NOT NULL)
WHERE user_name_lower IS NOT NULL"""

_ALL = {"src": "scim_requests"}

SCIM_HOURS = Summary("derived_scim_hours", HOURS_SELECT.format_map(_ALL), refreshed_by="scim")
SCIM_LATENCY = Summary("derived_scim_latency", LATENCY_SELECT.format_map(_ALL), refreshed_by="scim")
SCIM_ERROR_USERS = Summary("derived_scim_error_users", ERROR_USERS_SELECT.format_map(_ALL), refreshed_by="scim")
SCIM_ERROR_ANSWERS = Summary("derived_scim_error_answers", ERROR_ANSWERS_SELECT.format_map(_ALL),
                             refreshed_by="scim")
# A primary key so a load batch folds its answers in with one upsert.
SCIM_ERROR_KEYS = Summary("derived_scim_error_keys", ERROR_KEYS_SELECT.format(src="derived_scim_error_answers"),
                          depends=("derived_scim_error_answers",), refreshed_by="scim", columns="""
    status INTEGER, key_kind VARCHAR, key VARCHAR, first_ts TIMESTAMPTZ, last_ts TIMESTAMPTZ, answers BIGINT,
    PRIMARY KEY (status, key_kind, key)""")
SCIM_BY_USER = Summary("derived_scim_requests_by_user", BY_USER_SELECT.format_map(_ALL), order=BY_USER_ORDER,
                       resort_at=0.25, refreshed_by="scim")
# Random ids spread every batch over the whole key range: without the sort every row group held every key.
SCIM_KEY_USER_NAMES = Summary("derived_scim_key_user_names", KEY_USER_NAMES_SELECT.format_map(_ALL),
                              order="key, user_name_lower", refreshed_by="scim", columns="""
    key VARCHAR NOT NULL, user_name_lower VARCHAR NOT NULL, PRIMARY KEY (key, user_name_lower)""")

# Each request's correlation result, keyed by its request id and sorted by lower-case userName like the sorted
# copy, so the per-identity timeline reads one identity's results from one or two row groups (joining
# ``correlation`` on the text request_id reads that whole column: 513 ms p95 at 5M). Rebuilt with the correlation;
# requests loaded since have none until the next one. event_id uncompressed: the timeline's join reads a few rows,
# and DuckDB decodes a whole vector of DICT_FSST for each one (1M events: 42 ms with DICT_FSST, 10 ms uncompressed).
CORRELATION_REQUESTS = Summary("correlation_requests", """
SELECT r.user_name_lower, c.request_id, c.match_class, c.detail, c.event_id
FROM scim_requests r JOIN correlation c ON c.request_id = r.request_id""",
                               order="user_name_lower NULLS LAST, request_id", refreshed_by="correlation", columns="""
    user_name_lower VARCHAR, request_id VARCHAR NOT NULL, match_class VARCHAR NOT NULL, detail VARCHAR,
    event_id VARCHAR USING COMPRESSION uncompressed""")

CORRELATION_HOURS = Summary("derived_correlation_hours", refreshed_by="correlation", select="""
SELECT make_timestamptz(epoch_us(coalesce(event_time, request_ts)) // 3600000000 * 3600000000) AS hour,
       match_class, detail, service_principal_id, suspicious, count(*) AS rows
FROM correlation GROUP BY ALL""")
SCIM_UNLOGGED = Summary("derived_scim_unlogged", refreshed_by="correlation", select="""
SELECT r.ts, r.request_id, c.detail, r.method, r.path, r.status, r.operation, r.user_name,
       r.resource_id, r.client_ip, r.user_agent, r.credential_id, r.tenant, c.suspicious, c.event_time,
       c.request_ts, c.service_principal_id
FROM correlation c JOIN scim_requests r ON r.request_id = c.request_id
WHERE c.match_class = 'scim_only' AND c.detail <> 'probe'""")
CORRELATION_CONTRADICTIONS = Summary("derived_correlation_contradictions", refreshed_by="correlation", select="""
SELECT c.event_time, c.detail, c.event_id, e.action, e.status AS event_status, e.error_code,
       c.request_id, r.method, r.path, r.status AS request_status, r.scim_type, r.error_detail,
       coalesce(r.user_name, e.user_name) AS user_name, c.service_principal_id, c.request_ts
FROM correlation c JOIN events e ON e.id = c.event_id JOIN scim_requests r ON r.request_id = c.request_id
WHERE c.match_class = 'contradiction'""")

SUMMARIES = [SCIM_HOURS, SCIM_LATENCY, SCIM_ERROR_USERS, SCIM_ERROR_ANSWERS, SCIM_ERROR_KEYS, SCIM_BY_USER,
             SCIM_KEY_USER_NAMES, CORRELATION_REQUESTS, CORRELATION_HOURS, SCIM_UNLOGGED, CORRELATION_CONTRADICTIONS]
CORRELATION_SUMMARIES = [s for s in SUMMARIES if s.refreshed_by == "correlation"]
