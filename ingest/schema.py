"""The source tables: what provlens loaded and cannot recompute (events, SCIM requests, the correlation, runs,
rejects, watermarks, job snapshots, the directory audit log, file read state, metadata), each declared once as a
column list. Summaries are not here: they are a cache (:mod:`ingest.summaries`), rebuilt from these tables, never
migrated.

A new store gets :data:`BASELINE` in one step. A store written before the summaries became a cache (schema versions
18 to 20, provlens up to this baseline) is upgraded by :data:`UPGRADE_FROM_MIGRATIONS`: its source tables are
kept as they are and its summary tables are dropped, for :func:`ingest.summaries.ensure` to rebuild. Add a change
to a source table as a new ``(version, description, statements)`` at the end of :data:`MIGRATIONS`.
"""

from __future__ import annotations

Columns = tuple[tuple[str, str], ...]

EVENT_COLUMNS: Columns = (
    ("id", "VARCHAR PRIMARY KEY"), ("activity_time", "TIMESTAMPTZ NOT NULL"), ("tenant_id", "VARCHAR"),
    ("job_id", "VARCHAR"), ("cycle_id", "VARCHAR"), ("change_id", "VARCHAR"), ("service_principal_id", "VARCHAR"),
    ("service_principal_name", "VARCHAR"), ("action", "VARCHAR"), ("status", "VARCHAR"), ("error_code", "VARCHAR"),
    ("error_category", "VARCHAR"), ("error_reason", "VARCHAR"), ("error_details", "VARCHAR"),
    ("recommended_action", "VARCHAR"), ("http_status", "INTEGER"), ("scim_type", "VARCHAR"),
    ("scim_detail", "VARCHAR"), ("retry_count", "INTEGER"), ("next_retry_at", "TIMESTAMPTZ"),
    ("source_id", "VARCHAR"), ("source_name", "VARCHAR"), ("source_upn", "VARCHAR"), ("source_type", "VARCHAR"),
    ("target_id", "VARCHAR"), ("target_name", "VARCHAR"), ("target_type", "VARCHAR"), ("user_name", "VARCHAR"),
    ("email", "VARCHAR"), ("email_domain", "VARCHAR"), ("skip_reason", "VARCHAR"), ("skip_category", "VARCHAR"),
    ("scope_active", "VARCHAR"), ("scope_assigned", "VARCHAR"), ("scope_has_role", "VARCHAR"),
    ("scope_filter_passed", "VARCHAR"), ("import_kind", "VARCHAR"), ("duration_ms", "BIGINT"),
    ("initiated_by", "VARCHAR"),
    # Long near-unique text: DuckDB's compression analysis picks DICT_FSST for it, ~3x the insert time of the
    # whole load and ~5x the bytes of ZSTD (bench B2).
    ("raw", "JSON USING COMPRESSION zstd NOT NULL"),
    ("first_ingested_at", "TIMESTAMPTZ NOT NULL"), ("last_ingested_at", "TIMESTAMPTZ NOT NULL"),
    ("ingest_run_id", "BIGINT"),
    # Entra's text for a skip (the skip step's description: "... name.familyName is missing or invalid ..."); added
    # by migration 23, last so that a new store and an upgraded one have the same column order.
    ("skip_detail", "VARCHAR"),
)

# The SCIM audit trail: one row per request, keyed on the server's request_id.
SCIM_REQUEST_COLUMNS: Columns = (
    ("request_id", "VARCHAR PRIMARY KEY"), ("ts", "TIMESTAMPTZ NOT NULL"), ("method", "VARCHAR NOT NULL"),
    ("path", "VARCHAR NOT NULL"), ("query", "VARCHAR"), ("status", "INTEGER NOT NULL"), ("duration_ms", "DOUBLE"),
    ("resource_type", "VARCHAR"), ("resource_id", "VARCHAR"), ("external_id", "VARCHAR"), ("user_name", "VARCHAR"),
    ("user_name_lower", "VARCHAR"), ("operation", "VARCHAR"), ("scim_type", "VARCHAR"), ("error_detail", "VARCHAR"),
    ("email_domains", "VARCHAR[]"), ("email_types", "VARCHAR[]"), ("active_after", "BOOLEAN"),
    ("client_ip", "VARCHAR"), ("user_agent", "VARCHAR"), ("credential_id", "VARCHAR"), ("tenant", "VARCHAR"),
    ("is_probe", "BOOLEAN NOT NULL"), ("source_file", "VARCHAR"), ("source_line", "BIGINT"), ("raw", "JSON"),
    ("first_ingested_at", "TIMESTAMPTZ NOT NULL"), ("ingest_run_id", "BIGINT"),
)

# Entra <-> SCIM correlation: one row per matched pair or unmatched side, recomputed whole by each correlation
# (the correlation's output, kept like a source: its window and rules are inputs). Its ids with ZSTD: the
# default analysis picks DICT_FSST for near-unique ids, slower to write at every rebuild.
CORRELATION_COLUMNS: Columns = (
    ("event_id", "VARCHAR USING COMPRESSION zstd"), ("request_id", "VARCHAR USING COMPRESSION zstd"),
    ("match_key", "VARCHAR"), ("match_class", "VARCHAR NOT NULL"), ("detail", "VARCHAR"),
    ("suspicious", "BOOLEAN NOT NULL"), ("event_time", "TIMESTAMPTZ"), ("request_ts", "TIMESTAMPTZ"),
    ("delta_s", "DOUBLE"), ("service_principal_id", "VARCHAR"), ("computed_at", "TIMESTAMPTZ NOT NULL"),
)

INGEST_RUN_COLUMNS: Columns = (
    ("run_id", "BIGINT PRIMARY KEY"), ("source", "VARCHAR NOT NULL"), ("scope", "VARCHAR"),
    ("started_at", "TIMESTAMPTZ NOT NULL"), ("ended_at", "TIMESTAMPTZ"), ("window_start", "TIMESTAMPTZ"),
    ("window_end", "TIMESTAMPTZ"), ("pages", "INTEGER DEFAULT 0"), ("records_read", "BIGINT DEFAULT 0"),
    ("records_new", "BIGINT DEFAULT 0"), ("records_updated", "BIGINT DEFAULT 0"),
    ("records_rejected", "BIGINT DEFAULT 0"), ("retries", "INTEGER DEFAULT 0"), ("throttled", "INTEGER DEFAULT 0"),
    ("outcome", "VARCHAR NOT NULL"), ("message", "VARCHAR"),
)

INGEST_REJECT_COLUMNS: Columns = (
    ("run_id", "BIGINT"), ("source", "VARCHAR NOT NULL"), ("file", "VARCHAR"), ("position", "VARCHAR"),
    ("reason", "VARCHAR NOT NULL"), ("excerpt", "VARCHAR"), ("rejected_at", "TIMESTAMPTZ NOT NULL"),
)

WATERMARK_COLUMNS: Columns = (
    ("source", "VARCHAR NOT NULL"), ("scope", "VARCHAR NOT NULL"), ("value", "TIMESTAMPTZ NOT NULL"),
    ("updated_at", "TIMESTAMPTZ NOT NULL"), ("run_id", "BIGINT"),
)

SYNC_JOB_SNAPSHOT_COLUMNS: Columns = (
    ("job_id", "VARCHAR NOT NULL"), ("captured_at", "TIMESTAMPTZ NOT NULL"), ("service_principal_id", "VARCHAR"),
    ("template_id", "VARCHAR"), ("schedule_interval", "VARCHAR"), ("schedule_state", "VARCHAR"),
    ("status_code", "VARCHAR"), ("quarantine_reason", "VARCHAR"), ("quarantine_since", "TIMESTAMPTZ"),
    ("quarantine_series_began", "TIMESTAMPTZ"), ("quarantine_next_attempt", "TIMESTAMPTZ"),
    ("last_execution_state", "VARCHAR"), ("last_execution_began", "TIMESTAMPTZ"),
    ("last_execution_ended", "TIMESTAMPTZ"), ("last_success_ended", "TIMESTAMPTZ"),
    ("successive_failures", "INTEGER"), ("steady_state_last", "TIMESTAMPTZ"), ("raw", "JSON NOT NULL"),
)

# Where each SCIM audit file was read up to (ingest/scim/filestate.py); size, mtime and inode make a no-op rerun
# a stat per file.
SCIM_FILE_STATE_COLUMNS: Columns = (
    ("path", "VARCHAR PRIMARY KEY"), ("device", "BIGINT"), ("inode", "BIGINT"), ("head_len", "INTEGER NOT NULL"),
    ("head_sha256", "VARCHAR NOT NULL"), ("size", "BIGINT NOT NULL"), ("byte_offset", "BIGINT NOT NULL"),
    ("line_count", "BIGINT NOT NULL"), ("csv_header", "VARCHAR"), ("updated_at", "TIMESTAMPTZ NOT NULL"),
    ("ingest_run_id", "BIGINT"), ("mtime_ns", "BIGINT"),
)

# Where each Azure Storage blob (diagnostic settings' insights-logs-provisioninglogs) was read up to
# (ingest/blobs/): the container's URL (no query: never a SAS), the blob's name, what the listing said of it
# (etag, creation time, size) and the offset after its last complete line consumed, with the SHA-256 of the
# bytes just before that offset (a blob replaced under the same name shows there), lines read so far.
BLOB_STATE_COLUMNS: Columns = (
    ("container_url", "VARCHAR NOT NULL"), ("blob", "VARCHAR NOT NULL"), ("etag", "VARCHAR"),
    ("creation_time", "TIMESTAMPTZ"), ("size", "BIGINT NOT NULL"), ("byte_offset", "BIGINT NOT NULL"),
    ("line_count", "BIGINT NOT NULL"), ("tail_len", "INTEGER NOT NULL"), ("tail_sha256", "VARCHAR NOT NULL"),
    ("updated_at", "TIMESTAMPTZ NOT NULL"), ("ingest_run_id", "BIGINT"),
)

# The provisioning service's entries of the directory audit log (Graph /auditLogs/directoryAudits filtered to
# loggedByService 'Account Provisioning', issue 24; ingest/audit_sql.py flattens them): quarantine history from before
# the job snapshots, and configuration changes (who and when). Keyed on the Graph id; raw JSON kept.
DIRECTORY_AUDIT_COLUMNS: Columns = (
    ("id", "VARCHAR PRIMARY KEY"), ("activity_time", "TIMESTAMPTZ NOT NULL"), ("activity_display_name", "VARCHAR"),
    ("category", "VARCHAR"), ("result", "VARCHAR"), ("result_reason", "VARCHAR"), ("logged_by_service", "VARCHAR"),
    ("operation_type", "VARCHAR"), ("correlation_id", "VARCHAR"), ("initiated_by_type", "VARCHAR"),
    ("initiated_by_id", "VARCHAR"), ("initiated_by_name", "VARCHAR"), ("initiated_by", "JSON"),
    ("service_principal_id", "VARCHAR"), ("service_principal_name", "VARCHAR"), ("job_id", "VARCHAR"),
    ("target_resources", "JSON"), ("additional_details", "JSON"), ("raw", "JSON NOT NULL"),
    ("first_ingested_at", "TIMESTAMPTZ NOT NULL"), ("last_ingested_at", "TIMESTAMPTZ NOT NULL"),
    ("ingest_run_id", "BIGINT"),
)

# Alerts (issue 24): one row per episode of a (rule, key): from the evaluation that first found it active to the one
# that no longer did. What the rule said last (severity, message, action, identities, link) is kept up to date
# while it is active. fired_at/resolved_at/last_notified_at are evaluation times (UTC); last_notified_at is when a
# fired or reminder notification was last recorded (the re-notify clock). Written only by ingest/alerts/state.py
# through the Store.
ALERT_COLUMNS: Columns = (
    ("episode_id", "BIGINT PRIMARY KEY"), ("rule", "VARCHAR NOT NULL"), ("key", "VARCHAR NOT NULL"),
    ("severity", "VARCHAR NOT NULL"), ("app", "VARCHAR"), ("job", "VARCHAR"), ("message", "VARCHAR NOT NULL"),
    ("action", "VARCHAR"), ("identities", "INTEGER"), ("url", "VARCHAR"), ("first_seen", "TIMESTAMPTZ"),
    ("last_seen", "TIMESTAMPTZ"), ("fired_at", "TIMESTAMPTZ NOT NULL"), ("last_evaluated_at", "TIMESTAMPTZ NOT NULL"),
    ("resolved_at", "TIMESTAMPTZ"), ("last_notified_at", "TIMESTAMPTZ"),
)

# The alerts' outbox: one row per notification to one target (kind fired | reminder | resolved), recorded before it
# is sent and marked sent after (status pending -> sent, or failed once given up). attempts counts every try,
# last_error is the last failure's text with the target's secrets redacted; never a URL.
ALERT_DELIVERY_COLUMNS: Columns = (
    ("delivery_id", "BIGINT PRIMARY KEY"), ("episode_id", "BIGINT NOT NULL"), ("kind", "VARCHAR NOT NULL"),
    ("target", "VARCHAR NOT NULL"), ("recorded_at", "TIMESTAMPTZ NOT NULL"), ("status", "VARCHAR NOT NULL"),
    ("sent_at", "TIMESTAMPTZ"), ("attempts", "INTEGER NOT NULL DEFAULT 0"), ("last_attempt_at", "TIMESTAMPTZ"),
    ("last_error", "VARCHAR"),
)

# Preflight (issue 26): one row per preflight run of one app's job (what was read: effective users, target accounts,
# the SCIM URL without credentials), and its findings keyed by (run, kind, identity). A finding's identity is the
# Entra user's object id, or "target:<SCIM id>" for an account only the target holds (an orphan). group_key ties
# the findings that share one cause (the lower-cased userName of a duplicate). ingest/preflight/findings.py says what
# each kind means; queries/preflight.py checks each against the events Entra logged after the run.
PREFLIGHT_RUN_COLUMNS: Columns = (
    ("run_id", "BIGINT PRIMARY KEY"), ("started_at", "TIMESTAMPTZ NOT NULL"), ("service_principal_id", "VARCHAR"),
    ("job_id", "VARCHAR"), ("users", "INTEGER"), ("target_accounts", "INTEGER"), ("scim_url", "VARCHAR"),
    ("work_domains", "VARCHAR[]"), ("findings", "INTEGER"), ("message", "VARCHAR"),
)
PREFLIGHT_FINDING_COLUMNS: Columns = (
    ("run_id", "BIGINT NOT NULL"), ("kind", "VARCHAR NOT NULL"), ("identity", "VARCHAR NOT NULL"),
    ("source_id", "VARCHAR"), ("user_principal_name", "VARCHAR"), ("user_name", "VARCHAR"), ("target_id", "VARCHAR"),
    ("group_key", "VARCHAR"), ("detail", "VARCHAR"), ("evidence", "JSON"), ("predicted_outcome", "VARCHAR"),
    ("recommended_action", "VARCHAR"), ("unknown", "BOOLEAN NOT NULL"),
)

# Loads whose summary refresh a fast backfill left to its last commit (Store.load_events(defer_summaries=True)).
SUMMARY_PENDING_RUN_COLUMNS: Columns = (("run_id", "BIGINT PRIMARY KEY"),)


def names(columns: Columns) -> list[str]:
    return [name for name, _ in columns]


def create_table(table: str, columns: Columns, *constraints: str, if_not_exists: bool = False) -> str:
    body = ", ".join([f"{n} {t}" for n, t in columns] + list(constraints))
    return f"CREATE TABLE {'IF NOT EXISTS ' if if_not_exists else ''}{table} ({body})"


# Every source table: its columns and table constraints.
TABLES: dict[str, tuple[Columns, tuple[str, ...]]] = {
    "events": (EVENT_COLUMNS, ()),
    "ingest_runs": (INGEST_RUN_COLUMNS, ()),
    "ingest_rejects": (INGEST_REJECT_COLUMNS, ()),
    "watermarks": (WATERMARK_COLUMNS, ("PRIMARY KEY (source, scope)",)),
    "sync_job_snapshots": (SYNC_JOB_SNAPSHOT_COLUMNS, ("PRIMARY KEY (job_id, captured_at)",)),
    "meta": ((("key", "VARCHAR PRIMARY KEY"), ("value", "VARCHAR")), ()),
    "scim_requests": (SCIM_REQUEST_COLUMNS, ()),
    "scim_file_state": (SCIM_FILE_STATE_COLUMNS, ()),
    "correlation": (CORRELATION_COLUMNS, ()),
    "summary_pending_runs": (SUMMARY_PENDING_RUN_COLUMNS, ()),
    "blob_state": (BLOB_STATE_COLUMNS, ("PRIMARY KEY (container_url, blob)",)),
    "directory_audits": (DIRECTORY_AUDIT_COLUMNS, ()),
    "alerts": (ALERT_COLUMNS, ()),
    "alert_deliveries": (ALERT_DELIVERY_COLUMNS, ()),
    "preflight_runs": (PREFLIGHT_RUN_COLUMNS, ()),
    "preflight_findings": (PREFLIGHT_FINDING_COLUMNS, ("PRIMARY KEY (run_id, kind, identity)",)),
}
# Tables that are neither a source nor a summary: the schema's own version.
BOOKKEEPING = ("schema_version", "summary_state")

SOURCE_TABLES = ["CREATE SEQUENCE ingest_run_seq START 1",
                 *(create_table(name, columns, *constraints) for name, (columns, constraints) in TABLES.items())]

BASELINE = 21
# The oldest store the upgrade reads: provlens's schema before the summaries became a cache.
OLDEST_UPGRADABLE = 18

# From schema 18-20 (every source table as the baseline has it, bar scim_file_state.mtime_ns before 20): drop the
# summaries, which were migrated tables then (every table not in TABLES or BOOKKEEPING: Store.migrate drops them and
# ingest.summaries.ensure rebuilds them), and their bookkeeping in meta.
UPGRADE_FROM_MIGRATIONS = [
    "ALTER TABLE scim_file_state ADD COLUMN IF NOT EXISTS mtime_ns BIGINT",
    create_table("summary_pending_runs", SUMMARY_PENDING_RUN_COLUMNS, if_not_exists=True),
    """INSERT INTO summary_pending_runs
       SELECT DISTINCT unnest(value::BIGINT[]) FROM meta WHERE key = 'derived_pending_runs' ON CONFLICT DO NOTHING""",
    """DELETE FROM meta WHERE key IN ('derived_pending_runs', 'identity_events_sorted_rows',
       'identity_events_sorted_rows_replaced', 'scim_requests_by_user_sorted_rows',
       'scim_requests_by_user_sorted_rows_replaced', 'scim_rekey_pending')""",
]


def _reclassify_skips() -> list[str]:
    """Migration 23 (issue 22): skips classified by the skip-reason table (ingest/skip_reasons.py) instead of "any
    skip step is no_change", and the skip step's text kept in ``skip_detail``. The skipped events already stored are
    classified again from their raw JSON (no re-download), and the summaries that count skip categories are dropped
    for :func:`ingest.summaries.ensure` to rebuild from the corrected rows."""
    from ingest.event_sql import NORMALISE_EVENTS

    again = NORMALISE_EVENTS.replace("{source}", "SELECT raw, '' AS pos FROM events WHERE status = 'skipped'")
    return [
        "ALTER TABLE events ADD COLUMN IF NOT EXISTS skip_detail VARCHAR",
        f"""UPDATE events SET skip_category = n.skip_category, skip_reason = n.skip_reason, skip_detail = n.skip_detail
            FROM ({again}) AS n WHERE events.id = n.id""",
        *(f"DROP TABLE IF EXISTS {table}" for table in (
            "derived_event_hours", "derived_identity_events", "derived_skip_identities", "derived_skip_reasons",
            "derived_skip_top")),
    ]


# (version, description, statements) after the baseline, for stores written before each step. A new store gets
# every table of TABLES as it is now and records these versions as included (Store.migrate) without running them.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (22, "blob_state: read positions of the Azure Storage blob source (issue 22)",
     [create_table("blob_state", BLOB_STATE_COLUMNS, "PRIMARY KEY (container_url, blob)", if_not_exists=True)]),
    (23, "skips classified by the skip-reason table; events.skip_detail", _reclassify_skips()),
    (24, "directory_audits: the provisioning service's directory audit log entries (issue 24)",
     [create_table("directory_audits", DIRECTORY_AUDIT_COLUMNS, if_not_exists=True)]),
    (25, "alerts and alert_deliveries: alert state and its outbox (issue 24)",
     [create_table("alerts", ALERT_COLUMNS, if_not_exists=True),
      create_table("alert_deliveries", ALERT_DELIVERY_COLUMNS, if_not_exists=True)]),
    (26, "preflight_runs and preflight_findings: preflight predictions to check against later cycles (issue 26)",
     [create_table("preflight_runs", PREFLIGHT_RUN_COLUMNS, if_not_exists=True),
      create_table("preflight_findings", PREFLIGHT_FINDING_COLUMNS, "PRIMARY KEY (run_id, kind, identity)",
                   if_not_exists=True)]),
]

LATEST_VERSION = max([BASELINE, *(version for version, _, _ in MIGRATIONS)])
