"""The DuckDB schema as an ordered list of migrations; :mod:`ingest.store` applies the missing ones.

Add a migration by appending ``(next_version, description, [statements])``; never edit a released one.
"""

from __future__ import annotations

from ingest.derived import CREATE_TABLES as DERIVED_TABLES
from ingest.derived import MIGRATION_4 as DERIVED_MIGRATION_4
from ingest.derived import MIGRATION_5 as DERIVED_MIGRATION_5
from ingest.derived import MIGRATION_6 as DERIVED_MIGRATION_6
from ingest.derived import MIGRATION_11 as DERIVED_MIGRATION_11
from ingest.derived import MIGRATION_16 as DERIVED_MIGRATION_16
from ingest.derived import MIGRATION_17 as DERIVED_MIGRATION_17
from ingest.derived import MIGRATION_19 as DERIVED_MIGRATION_19
from ingest.scim.derived import MIGRATION_7 as SCIM_DERIVED_MIGRATION_7
from ingest.scim.derived import MIGRATION_8 as SCIM_DERIVED_MIGRATION_8
from ingest.scim.derived import MIGRATION_10 as SCIM_DERIVED_MIGRATION_10
from ingest.scim.derived import MIGRATION_14 as SCIM_DERIVED_MIGRATION_14
from ingest.scim.derived import MIGRATION_15 as SCIM_DERIVED_MIGRATION_15
from ingest.scim.derived import MIGRATION_18 as SCIM_DERIVED_MIGRATION_18

EVENT_COLUMNS = """
    id VARCHAR PRIMARY KEY,
    activity_time TIMESTAMPTZ NOT NULL,
    tenant_id VARCHAR,
    job_id VARCHAR,
    cycle_id VARCHAR,
    change_id VARCHAR,
    service_principal_id VARCHAR,
    service_principal_name VARCHAR,
    action VARCHAR,
    status VARCHAR,
    error_code VARCHAR,
    error_category VARCHAR,
    error_reason VARCHAR,
    error_details VARCHAR,
    recommended_action VARCHAR,
    http_status INTEGER,
    scim_type VARCHAR,
    scim_detail VARCHAR,
    retry_count INTEGER,
    next_retry_at TIMESTAMPTZ,
    source_id VARCHAR,
    source_name VARCHAR,
    source_upn VARCHAR,
    source_type VARCHAR,
    target_id VARCHAR,
    target_name VARCHAR,
    target_type VARCHAR,
    user_name VARCHAR,
    email VARCHAR,
    email_domain VARCHAR,
    skip_reason VARCHAR,
    skip_category VARCHAR,
    scope_active VARCHAR,
    scope_assigned VARCHAR,
    scope_has_role VARCHAR,
    scope_filter_passed VARCHAR,
    import_kind VARCHAR,
    duration_ms BIGINT,
    initiated_by VARCHAR,
    raw JSON NOT NULL,
    first_ingested_at TIMESTAMPTZ NOT NULL,
    last_ingested_at TIMESTAMPTZ NOT NULL,
    ingest_run_id BIGINT
"""

# SCIM audit trail (migration 2): one row per request, keyed on the server's request_id.
SCIM_REQUEST_COLUMNS = """
    request_id VARCHAR PRIMARY KEY,
    ts TIMESTAMPTZ NOT NULL,
    method VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    query VARCHAR,
    status INTEGER NOT NULL,
    duration_ms DOUBLE,
    resource_type VARCHAR,
    resource_id VARCHAR,
    external_id VARCHAR,
    user_name VARCHAR,
    user_name_lower VARCHAR,
    operation VARCHAR,
    scim_type VARCHAR,
    error_detail VARCHAR,
    email_domains VARCHAR[],
    email_types VARCHAR[],
    active_after BOOLEAN,
    client_ip VARCHAR,
    user_agent VARCHAR,
    credential_id VARCHAR,
    tenant VARCHAR,
    is_probe BOOLEAN NOT NULL,
    source_file VARCHAR,
    source_line BIGINT,
    raw JSON,
    first_ingested_at TIMESTAMPTZ NOT NULL,
    ingest_run_id BIGINT
"""

# Entra <-> SCIM correlation (migration 2): one row per matched pair or unmatched side, rebuilt whole.
CORRELATION_COLUMNS = """
    event_id VARCHAR,
    request_id VARCHAR,
    match_key VARCHAR,
    match_class VARCHAR NOT NULL,
    detail VARCHAR,
    suspicious BOOLEAN NOT NULL,
    event_time TIMESTAMPTZ,
    request_ts TIMESTAMPTZ,
    delta_s DOUBLE,
    service_principal_id VARCHAR,
    computed_at TIMESTAMPTZ NOT NULL
"""

# Migration 9: the raw JSON of an event is long, near-unique text. DuckDB's default compression analysis
# tries every method on it and picks DICT_FSST, which made the events INSERT ~3x slower than with ZSTD
# (issue 7 B2: 200k events 4.6 s -> 1.6 s) and stored it in ~5x the bytes. Same rows, same order.
_EVENTS_ZSTD = EVENT_COLUMNS.replace("raw JSON NOT NULL", "raw JSON USING COMPRESSION zstd NOT NULL")
assert _EVENTS_ZSTD != EVENT_COLUMNS
MIGRATION_9 = [
    f"CREATE TABLE events_v9 ({_EVENTS_ZSTD})",
    "INSERT INTO events_v9 SELECT * FROM events",
    "DROP TABLE events",
    "ALTER TABLE events_v9 RENAME TO events",
]

# Migration 12: an identity's events arrive over the whole log, so with events in arrival order every row
# group holds some and the zonemaps on source_id skip none (5M events: identity_events read all 45 row groups,
# 170 ms per call). An ART index finds the rows directly (36-66 ms, most of it fetching rows from different
# row groups). IF NOT EXISTS: applied again cleanly when a test sets a store's schema_version back.
MIGRATION_12 = ["CREATE INDEX IF NOT EXISTS events_source_id ON events (source_id)"]

# Migration 13: the correlation's event and request ids are near-unique text that every rebuild writes again
# (14M rows at 5M events). DuckDB's default analysis picks DICT_FSST for them; ZSTD writes the rows in ~60% of
# the time (insert 7.9 -> 4.6 s) and ~1/12 of the segments. Same rows; IF EXISTS: re-applied cleanly.
_CORRELATION_ZSTD = CORRELATION_COLUMNS.replace("event_id VARCHAR,", "event_id VARCHAR USING COMPRESSION zstd,") \
    .replace("request_id VARCHAR,", "request_id VARCHAR USING COMPRESSION zstd,")
assert _CORRELATION_ZSTD.count("zstd") == 2
MIGRATION_13 = [
    "DROP TABLE IF EXISTS correlation_v13",
    f"CREATE TABLE correlation_v13 ({_CORRELATION_ZSTD})",
    "INSERT INTO correlation_v13 SELECT * FROM correlation",
    "DROP TABLE correlation",
    "ALTER TABLE correlation_v13 RENAME TO correlation",
]

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "events, ingest runs, rejects, watermarks, job snapshots, metadata",
        [
            f"CREATE TABLE events ({EVENT_COLUMNS})",
            "CREATE SEQUENCE ingest_run_seq START 1",
            """CREATE TABLE ingest_runs (
                run_id BIGINT PRIMARY KEY,
                source VARCHAR NOT NULL,
                scope VARCHAR,
                started_at TIMESTAMPTZ NOT NULL,
                ended_at TIMESTAMPTZ,
                window_start TIMESTAMPTZ,
                window_end TIMESTAMPTZ,
                pages INTEGER DEFAULT 0,
                records_read BIGINT DEFAULT 0,
                records_new BIGINT DEFAULT 0,
                records_updated BIGINT DEFAULT 0,
                records_rejected BIGINT DEFAULT 0,
                retries INTEGER DEFAULT 0,
                throttled INTEGER DEFAULT 0,
                outcome VARCHAR NOT NULL,
                message VARCHAR
            )""",
            """CREATE TABLE ingest_rejects (
                run_id BIGINT,
                source VARCHAR NOT NULL,
                file VARCHAR,
                position VARCHAR,
                reason VARCHAR NOT NULL,
                excerpt VARCHAR,
                rejected_at TIMESTAMPTZ NOT NULL
            )""",
            """CREATE TABLE watermarks (
                source VARCHAR NOT NULL,
                scope VARCHAR NOT NULL,
                value TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                run_id BIGINT,
                PRIMARY KEY (source, scope)
            )""",
            """CREATE TABLE sync_job_snapshots (
                job_id VARCHAR NOT NULL,
                captured_at TIMESTAMPTZ NOT NULL,
                service_principal_id VARCHAR,
                template_id VARCHAR,
                schedule_interval VARCHAR,
                schedule_state VARCHAR,
                status_code VARCHAR,
                quarantine_reason VARCHAR,
                quarantine_since TIMESTAMPTZ,
                quarantine_series_began TIMESTAMPTZ,
                quarantine_next_attempt TIMESTAMPTZ,
                last_execution_state VARCHAR,
                last_execution_began TIMESTAMPTZ,
                last_execution_ended TIMESTAMPTZ,
                last_success_ended TIMESTAMPTZ,
                successive_failures INTEGER,
                steady_state_last TIMESTAMPTZ,
                raw JSON NOT NULL,
                PRIMARY KEY (job_id, captured_at)
            )""",
            "CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
        ],
    ),
    # ---- SCIM audit trail and its correlation with Entra's log (owner: SCIM ingest, issue 4) ----
    (
        2,
        "SCIM audit trail requests, per-file read state, Entra <-> SCIM correlation",
        [
            f"CREATE TABLE scim_requests ({SCIM_REQUEST_COLUMNS})",
            """CREATE TABLE scim_file_state (
                path VARCHAR PRIMARY KEY,
                device BIGINT,
                inode BIGINT,
                head_len INTEGER NOT NULL,
                head_sha256 VARCHAR NOT NULL,
                size BIGINT NOT NULL,
                byte_offset BIGINT NOT NULL,
                line_count BIGINT NOT NULL,
                csv_header VARCHAR,
                updated_at TIMESTAMPTZ NOT NULL,
                ingest_run_id BIGINT
            )""",
            f"CREATE TABLE correlation ({CORRELATION_COLUMNS})",
        ],
    ),
    # ---- derived state for fast page views (owner: performance, issue 7 B4; see ingest/derived.py) ----
    (
        3,
        "derived state: failure runs, cycle summaries, work email domains (filled by migration 4)",
        DERIVED_TABLES,
    ),
    (
        4,
        "derived state: app names on cycle summaries, hourly event counts; all derived state backfilled",
        DERIVED_MIGRATION_4,
    ),
    (5, "derived state: per-identity events and failure state (backfilled)", DERIVED_MIGRATION_5),
    (6, "derived state: all-time page tables (cycle heads, skipped identities and reasons, error codes; backfilled)",
     DERIVED_MIGRATION_6),
    # ---- derived SCIM / correlation state (owner: performance, issue 7 B4; see ingest/scim/derived.py) ----
    (7, "derived SCIM state: hourly requests, latency histogram, error users, correlation summaries (backfilled)",
     SCIM_DERIVED_MIGRATION_7),
    (8, "derived SCIM state: the 400/409 answers a violation can cite as evidence (backfilled)",
     SCIM_DERIVED_MIGRATION_8),
    # ---- event load speed (owner: ingest speed, issue 7 B1/B2) ----
    (9, "events.raw stored with ZSTD compression (the default analysis chose DICT_FSST: ~3x the insert time "
        "of the whole load and ~5x the bytes); existing events copied over", MIGRATION_9),
    # ---- per-identity SCIM timeline (owner: timeline, issue 7 B4; see ingest/scim/derived.py) ----
    (10, "correlation result per SCIM request, keyed on the request's rowid and sorted by it (backfilled)",
     SCIM_DERIVED_MIGRATION_10),
    # ---- identity search (owner: identity search, issue 7 B4; see ingest/derived.py) ----
    (11, "derived state: the names (UPN, userName, target id) each identity went by, per app and job (backfilled)",
     DERIVED_MIGRATION_11),
    # ---- per-identity lookups on time-ordered events (owner: performance, issue 7 B4) ----
    (12, "index on events.source_id: one identity's events are spread over every row group of a time-ordered "
         "log, so its lookups scanned the whole column", MIGRATION_12),
    # ---- correlation speed (owner: performance, issue 7 B8) ----
    (13, "correlation event and request ids stored with ZSTD compression (the default analysis chose DICT_FSST, "
         "slower to write at every rebuild); existing rows copied over", MIGRATION_13),
    # ---- per-identity SCIM lookups (owner: performance, issue 7 B4; see ingest/scim/derived.py) ----
    (14, "SCIM requests sorted by userName, and the userNames of each resource id and externalId, for the "
         "per-identity lookups (backfilled); identity names sorted by source id", SCIM_DERIVED_MIGRATION_14),
    (15, "correlation result per SCIM request re-keyed to the rows of the userName-sorted requests (migration 14)",
     SCIM_DERIVED_MIGRATION_15),
    # ---- per-identity event lookups (owner: performance, issue 7 B4; see ingest/derived.py) ----
    (16, "derived state: the events' identity page columns sorted by source id (backfilled)", DERIVED_MIGRATION_16),
    (17, "derived state: the skipped page's top identities per category (backfilled)", DERIVED_MIGRATION_17),
    (18, "the userNames of each SCIM resource id and externalId sorted by key (rewritten with every re-sort of "
         "the SCIM requests from now on)", SCIM_DERIVED_MIGRATION_18),
    (19, "derived state: per-identity failure state, all-time recurring failures and per-source counts dropped (they "
         "mixed an identity's runs; the pages read the open run from derived_failures)", DERIVED_MIGRATION_19),
    # ---- SCIM no-op reruns (issue 27): an unchanged audit file costs a stat, not a read ----
    (20, "scim_file_state.mtime_ns: with size and inode, an unchanged audit file is skipped without opening it",
     ["ALTER TABLE scim_file_state ADD COLUMN IF NOT EXISTS mtime_ns BIGINT"]),  # IF NOT EXISTS: re-applied cleanly
]

LATEST_VERSION = max(version for version, _, _ in MIGRATIONS)
