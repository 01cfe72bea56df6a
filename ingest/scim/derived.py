"""Derived SCIM and correlation state: small summaries the store keeps so the SCIM audit page reads
hundreds of rows instead of scanning every request (issue 7, B4).

- ``derived_scim_hours``: requests per UTC hour and (operation, status, probe, tenant, client columns,
  scimType, error detail), with the first and last request time - counts, clients, errors, 401/403s
  and probes for any window (whole hours from here, ragged edges from ``scim_requests``).
- ``derived_scim_latency``: requests per UTC hour, operation and ``duration_ms`` value (a histogram;
  the server's durations take few distinct values) - exact ``quantile_cont`` percentiles.
- ``derived_scim_error_users``: the distinct (status, scimType, lower-case userName) of error answers,
  all time - "user names" per error type without a scan when the period is all time.
- ``derived_correlation_hours``, ``derived_scim_unlogged``, ``derived_correlation_contradictions``:
  correlation rows per hour and class; the SCIM-only requests (probes excluded) and the
  contradictions with the request's / event's columns - recomputed with the correlation.
- ART indexes on ``scim_requests`` (userName, resource id, externalId) for the per-identity timelines
  (migration 7; dropped by migration 14 for ``derived_scim_requests_by_user``).
- ``derived_scim_error_answers``: the 400 and 409 answers (time, status, externalId, DuckDB's lower(userName)):
  the only requests that can be a violation's SCIM evidence (``queries.datasets`` violations), about 5% of
  the trail; and ``derived_scim_error_keys``: per (status, key kind, key) - the externalId, or lower(userName) -
  the first and last of those answers, so the violations query decides most groups from one row per key and
  reads the answers only where an answer before and one after the window leave it open (migration 8).
- ``derived_scim_requests_by_user``: every request, in the columns the per-identity lookups and the correlation
  read, stored sorted by lower-case userName (then time): one identity's requests sit in one or two row groups,
  which zone maps find, instead of ~100 rows spread over every row group of a time-ordered trail (issue 7 B4;
  migration 14). A load batch appends its requests; when the appended rows exceed a quarter of the sorted ones,
  the load rewrites the table sorted (``RESORT``, ``REKEY``). Only ever appended to or rewritten whole
  (CREATE OR REPLACE), so a rowid stays put until the next rewrite.
- ``correlation_requests``: each request's correlation class, detail and event, keyed on its number (the
  ``derived_scim_requests_by_user`` rowid) and sorted by it, written by the correlation rebuild
  (``ingest.correlate``, whose requests are numbered by that table) and re-keyed by a rewrite: the timeline joins
  an identity's requests, a contiguous range of numbers, to one or two row groups here (migrations 10, 14).
- ``derived_scim_key_user_names``: which lower-case userNames each resource id and externalId was sent with, so
  a lookup by id finds the userNames to read (a request without a userName sorts last and is read by id).

The SCIM summaries grow with each load batch (:func:`add_scim_batch`, same transaction as the rows:
requests are only ever inserted, never changed); the correlation ones are rebuilt in the correlation's
transaction (:func:`refresh_correlation`). Migrations 7 and 8 create and backfill them with the same SQL.
Read queries live in :mod:`queries.scim`.
"""

from __future__ import annotations

import duckdb

from ingest.derived import sorted_copy_due, sorted_rows_meta

HOUR_OF_TS = "make_timestamptz(epoch_us(ts) // 3600000000 * 3600000000)"
IDENTITY_KEYS = ("user_name_lower", "resource_id", "external_id")
HOUR_KEYS = ("operation", "status", "is_probe", "tenant", "credential_id", "user_agent", "client_ip",
             "scim_type", "error_detail")
_KEYS = ", ".join(HOUR_KEYS)

# Each SELECT reads a relation {src} of scim_requests rows.
_HOURS_SELECT = f"""SELECT {HOUR_OF_TS} AS hour, {_KEYS}, count(*) AS requests, min(ts) AS first_ts,
       max(ts) AS last_ts
FROM {{src}} GROUP BY ALL"""
_LATENCY_SELECT = f"""SELECT {HOUR_OF_TS} AS hour, operation, duration_ms, count(*) AS requests
FROM {{src}} WHERE duration_ms IS NOT NULL GROUP BY ALL"""
_ERROR_USERS_SELECT = """SELECT DISTINCT status, scim_type, user_name_lower
FROM {src} WHERE status >= 400 AND user_name_lower IS NOT NULL"""
# lower(user_name) by DuckDB (not the parser's user_name_lower) so the violations join compares exactly as before.
_ERROR_ANSWERS_SELECT = """SELECT ts, status, external_id, lower(user_name) AS user_name_lower
FROM {src} WHERE status IN (400, 409)"""
# Per key of those answers (from a relation {src} of derived_scim_error_answers rows): first and last answer.
_ERROR_KEYS_SELECT = """SELECT status, 'external_id' AS key_kind, external_id AS key, min(ts) AS first_ts,
       max(ts) AS last_ts, count(*) AS answers
FROM {src} WHERE external_id IS NOT NULL GROUP BY ALL
UNION ALL
SELECT status, 'user_name', user_name_lower, min(ts), max(ts), count(*)
FROM {src} WHERE user_name_lower IS NOT NULL GROUP BY ALL"""

# Correlation summaries (always rebuilt from the whole correlation table).
_CORRELATION_HOURS_SELECT = """SELECT make_timestamptz(epoch_us(coalesce(event_time, request_ts)) // 3600000000
                                       * 3600000000) AS hour,
       match_class, detail, service_principal_id, suspicious, count(*) AS rows
FROM correlation GROUP BY ALL"""
_UNLOGGED_SELECT = """SELECT r.ts, r.request_id, c.detail, r.method, r.path, r.status, r.operation, r.user_name,
       r.resource_id, r.client_ip, r.user_agent, r.credential_id, r.tenant, c.suspicious, c.event_time,
       c.request_ts, c.service_principal_id
FROM correlation c JOIN scim_requests r ON r.request_id = c.request_id
WHERE c.match_class = 'scim_only' AND c.detail <> 'probe'"""
_CONTRADICTIONS_SELECT = """SELECT c.event_time, c.detail, c.event_id, e.action, e.status AS event_status, e.error_code,
       c.request_id, r.method, r.path, r.status AS request_status, r.scim_type, r.error_detail,
       coalesce(r.user_name, e.user_name) AS user_name, c.service_principal_id, c.request_ts
FROM correlation c JOIN events e ON e.id = c.event_id JOIN scim_requests r ON r.request_id = c.request_id
WHERE c.match_class = 'contradiction'"""

_CORRELATION_TABLES = {
    "derived_correlation_hours": _CORRELATION_HOURS_SELECT,
    "derived_scim_unlogged": _UNLOGGED_SELECT,
    "derived_correlation_contradictions": _CONTRADICTIONS_SELECT,
}

# Migration 7: create and backfill (CREATE TABLE AS keeps the source columns' types).
MIGRATION_7 = [
    "CREATE TABLE derived_scim_hours AS " + _HOURS_SELECT.format(src="scim_requests"),
    "CREATE TABLE derived_scim_latency AS " + _LATENCY_SELECT.format(src="scim_requests"),
    "CREATE TABLE derived_scim_error_users AS " + _ERROR_USERS_SELECT.format(src="scim_requests"),
    *(f"CREATE TABLE {table} AS {select}" for table, select in _CORRELATION_TABLES.items()),
    # Per-identity lookups (scim_identity_timeline, identity_scim_requests): ART indexes, one per key (dropped by
    # migration 14, which gives those lookups a table sorted by userName).
    *(f"CREATE INDEX scim_requests_{key} ON scim_requests ({key})" for key in IDENTITY_KEYS),
]


# Migration 8: the SCIM error answers a violation can cite, backfilled.
# OR REPLACE: a store taken back to an older version and migrated again gets them rebuilt, not an error.
# The key table has a primary key so a load batch folds its answers in with one upsert.
MIGRATION_8 = [
    "CREATE OR REPLACE TABLE derived_scim_error_answers AS " + _ERROR_ANSWERS_SELECT.format(src="scim_requests"),
    """CREATE OR REPLACE TABLE derived_scim_error_keys (status INTEGER, key_kind VARCHAR, key VARCHAR,
        first_ts TIMESTAMPTZ, last_ts TIMESTAMPTZ, answers BIGINT, PRIMARY KEY (status, key_kind, key))""",
    "INSERT INTO derived_scim_error_keys " + _ERROR_KEYS_SELECT.format(src="derived_scim_error_answers"),
]
# Migration 10: each request's correlation result by request number, backfilled from the current correlation
# (the rebuild writes the same rows from its own temp tables: ingest.correlate._INSERT_REQUESTS).
# event_id is stored uncompressed: the timeline's join reads a few rows spread over the table, and DuckDB
# decodes a whole 2,048-row vector of the DICT_FSST that its analysis picks for near-unique ids for each one
# (1M events, an identity with 294 requests in every row group: 42 ms with DICT_FSST, 10 ms uncompressed;
# +35 MB on disk, and the rebuild's INSERT is faster without the compression analysis).
MIGRATION_10 = [
    """CREATE OR REPLACE TABLE correlation_requests (request_key BIGINT NOT NULL, match_class VARCHAR NOT NULL,
        detail VARCHAR, event_id VARCHAR USING COMPRESSION uncompressed)""",
    """INSERT INTO correlation_requests
       SELECT r.rowid, c.match_class, c.detail, c.event_id
       FROM correlation c JOIN scim_requests r ON r.request_id = c.request_id
       ORDER BY r.rowid""",
]
# Migration 14 (see the module docstring). The correlation's requests (ingest.correlate c_req) are read from here.
BY_USER_COLUMNS = ("user_name_lower", "ts", "request_id", "method", "path", "status", "operation", "user_name",
                   "resource_id", "external_id", "scim_type", "error_detail", "tenant", "is_probe", "credential_id",
                   "user_agent", "client_ip")
_BY_USER_SELECT = (f"SELECT {', '.join(BY_USER_COLUMNS)} FROM {{src}} "
                   "ORDER BY user_name_lower NULLS LAST, ts, request_id")
BY_USER_SORTED_META = "scim_requests_by_user_sorted_rows"  # meta: rows in the sorted part (the rest: appended)
_KEY_USER_NAMES_SELECT = """SELECT DISTINCT key, user_name_lower FROM (
    SELECT resource_id AS key, user_name_lower FROM {src} WHERE resource_id IS NOT NULL
    UNION ALL SELECT external_id, user_name_lower FROM {src} WHERE external_id IS NOT NULL)
WHERE user_name_lower IS NOT NULL ORDER BY key"""
_KEY_USER_NAMES_TABLE = """CREATE OR REPLACE TABLE derived_scim_key_user_names (key VARCHAR NOT NULL,
    user_name_lower VARCHAR NOT NULL, PRIMARY KEY (key, user_name_lower))"""
# The per-identity lookups find a key (resource id, externalId) by zone maps, which needs the table sorted by
# key: each batch appends its keys sorted, but random ids spread every batch over the whole key range, so at 5M
# events every row group held every key (identity_scim_requests 10.0 ms; sorted 4.8 ms). Rewritten sorted with
# the requests' sorted copy (RESORT: the appended part stays under a quarter), as a new table (its primary key's
# index built once, instead of every key deleted from it and inserted again).
SORT_KEY_USER_NAMES = [
    "CREATE OR REPLACE TEMP TABLE key_user_names_sorted AS SELECT * FROM derived_scim_key_user_names",
    _KEY_USER_NAMES_TABLE,
    "INSERT INTO derived_scim_key_user_names SELECT * FROM key_user_names_sorted ORDER BY key, user_name_lower",
    "DROP TABLE key_user_names_sorted",
]


# A rewrite is two transactions: DuckDB numbers the rows of a table written in the running transaction with
# temporary rowids (from 2^55) until it commits, so correlation_requests can only be keyed once the sorted table
# has committed. In between it is empty: the timeline shows no correlation for those seconds (and until the next
# correlation, if the process stops there), never a wrong one.
REKEY_PENDING_META = "scim_rekey_pending"  # meta: RESORT committed, REKEY not yet (Store.open finishes it)
_RESORT_REQUESTS = [
    "CREATE OR REPLACE TABLE derived_scim_requests_by_user AS " + _BY_USER_SELECT.format(src="scim_requests"),
    "DELETE FROM correlation_requests",
    sorted_rows_meta("derived_scim_requests_by_user", BY_USER_SORTED_META),
    f"INSERT OR REPLACE INTO meta VALUES ('{REKEY_PENDING_META}', 'true')",
]
RESORT = [*_RESORT_REQUESTS, *SORT_KEY_USER_NAMES]
# Then: each request's result from ``correlation`` (what the last rebuild wrote), keyed on the committed rowids.
REKEY = [
    "DELETE FROM correlation_requests",
    """INSERT INTO correlation_requests
       SELECT b.rowid, c.match_class, c.detail, c.event_id
       FROM derived_scim_requests_by_user b JOIN correlation c ON c.request_id = b.request_id
       ORDER BY b.rowid""",
    f"DELETE FROM meta WHERE key = '{REKEY_PENDING_META}'",
]


def resort_due(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the rows appended since the last sort exceed a quarter of the sorted ones."""
    return sorted_copy_due(con, "derived_scim_requests_by_user", BY_USER_SORTED_META)


MIGRATION_14 = [
    *_RESORT_REQUESTS,  # as migration 14 always did (the key table it reads from migration 18 on is created below)
    _KEY_USER_NAMES_TABLE,
    "INSERT INTO derived_scim_key_user_names " + _KEY_USER_NAMES_SELECT.format(src="scim_requests"),
    # identity_scim_requests looks up derived_identity_names by source id: its rows are now written sorted by it
    # (ingest.derived); sort the existing ones (a temp copy keeps the table's column compression settings).
    "CREATE OR REPLACE TEMP TABLE identity_names_sorted AS SELECT * FROM derived_identity_names ORDER BY source_id",
    "DELETE FROM derived_identity_names",
    "INSERT INTO derived_identity_names SELECT * FROM identity_names_sorted",
    "DROP TABLE identity_names_sorted",
    # The per-identity lookups no longer read scim_requests by key: its ART indexes (migration 7) only cost loads.
    *(f"DROP INDEX IF EXISTS scim_requests_{key}" for key in IDENTITY_KEYS),
]
MIGRATION_15 = REKEY  # a migration of its own: see RESORT
MIGRATION_18 = SORT_KEY_USER_NAMES
_ERROR_KEYS_UPSERT = ("INSERT INTO derived_scim_error_keys {select} ON CONFLICT DO UPDATE SET "
                      "first_ts = least(first_ts, excluded.first_ts), last_ts = greatest(last_ts, excluded.last_ts), "
                      "answers = answers + excluded.answers")


def _merge_hourly(con: duckdb.DuckDBPyConnection, table: str, keys: str, sums: str) -> None:
    """Add the temp table ``scim_add_{table}`` to ``table``: the touched hours' rows are re-aggregated."""
    add = f"scim_add_{table}"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE scim_merged AS
        SELECT hour, {keys}, {sums} FROM (
            SELECT * FROM {table} WHERE hour IN (SELECT DISTINCT hour FROM {add})
            UNION ALL BY NAME SELECT * FROM {add})
        GROUP BY ALL""")
    con.execute(f"DELETE FROM {table} WHERE hour IN (SELECT DISTINCT hour FROM {add})")
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM scim_merged")
    con.execute(f"DROP TABLE scim_merged; DROP TABLE {add}")


def add_scim_batch(con: duckdb.DuckDBPyConnection, inserted_at, run_id: int | None) -> None:
    """Fold the requests a batch just inserted (``first_ingested_at = inserted_at``, this run) into the
    SCIM summaries. Call inside the batch's transaction, after the INSERT."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE scim_batch AS
                    SELECT ts, {_KEYS}, duration_ms, user_name_lower, external_id, user_name, request_id, method, path,
                           resource_id FROM scim_requests
                    WHERE first_ingested_at = $at AND ingest_run_id IS NOT DISTINCT FROM $run""",
                {"at": inserted_at, "run": run_id})
    con.execute("CREATE OR REPLACE TEMP TABLE scim_add_derived_scim_hours AS "
                + _HOURS_SELECT.format(src="scim_batch"))
    _merge_hourly(con, "derived_scim_hours", _KEYS,
                  "sum(requests)::BIGINT AS requests, min(first_ts) AS first_ts, max(last_ts) AS last_ts")
    con.execute("CREATE OR REPLACE TEMP TABLE scim_add_derived_scim_latency AS "
                + _LATENCY_SELECT.format(src="scim_batch"))
    _merge_hourly(con, "derived_scim_latency", "operation, duration_ms", "sum(requests)::BIGINT AS requests")
    con.execute(f"""INSERT INTO derived_scim_error_users
        SELECT * FROM ({_ERROR_USERS_SELECT.format(src="scim_batch")}) b
        WHERE NOT EXISTS (SELECT 1 FROM derived_scim_error_users u WHERE u.status = b.status
                          AND u.scim_type IS NOT DISTINCT FROM b.scim_type
                          AND u.user_name_lower = b.user_name_lower)""")
    batch_errors = f"({_ERROR_ANSWERS_SELECT.format(src='scim_batch')})"
    con.execute(f"INSERT INTO derived_scim_error_answers SELECT * FROM {batch_errors}")
    con.execute(_ERROR_KEYS_UPSERT.format(select=_ERROR_KEYS_SELECT.format(src=batch_errors)))
    con.execute(f"INSERT INTO derived_scim_requests_by_user {_BY_USER_SELECT.format(src='scim_batch')}")
    con.execute(f"INSERT INTO derived_scim_key_user_names {_KEY_USER_NAMES_SELECT.format(src='scim_batch')} "
                "ON CONFLICT DO NOTHING")
    con.execute("DROP TABLE scim_batch")


def refresh_correlation(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuild the correlation summaries from ``correlation`` (inside the correlation's transaction)."""
    for table, select in _CORRELATION_TABLES.items():
        con.execute(f"DELETE FROM {table}")
        con.execute(f"INSERT INTO {table} {select}")
