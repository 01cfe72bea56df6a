"""Keeping the SCIM summaries (declared in :mod:`ingest.summaries.scim`) up to date: a SCIM load batch folds its
requests into them (:func:`add_scim_batch`, same transaction as the rows: requests are only ever inserted, never
changed); the correlation ones are rebuilt in the correlation's transaction (:func:`refresh_correlation`); the
userName-sorted copy is rewritten sorted once its appended part passes a quarter (:func:`resort`). Read queries
live in :mod:`queries.scim`.
"""

from __future__ import annotations

import duckdb

from ingest import dbfile, summaries
from ingest.summaries import scim as decl

_KEYS = ", ".join(decl.HOUR_KEYS)
# The columns the SCIM summaries read of a batch's requests.
_BATCH_COLUMNS = ", ".join(dict.fromkeys((*decl.BY_USER_COLUMNS, *decl.HOUR_KEYS, "duration_ms")))
_ERROR_KEYS_UPSERT = ("INSERT INTO derived_scim_error_keys {select} ON CONFLICT DO UPDATE SET "
                      "first_ts = least(first_ts, excluded.first_ts), last_ts = greatest(last_ts, excluded.last_ts), "
                      "answers = answers + excluded.answers")


def _merge_hourly(con: duckdb.DuckDBPyConnection, table: str, keys: str, sums: str, added: str) -> None:
    """Add the rows of ``added`` (a temp table of ``table``'s shape) to ``table``: the touched hours' rows are
    re-aggregated."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE scim_merged AS
        SELECT hour, {keys}, {sums} FROM (
            SELECT * FROM {table} WHERE hour IN (SELECT DISTINCT hour FROM {added})
            UNION ALL BY NAME SELECT * FROM {added})
        GROUP BY ALL""")
    con.execute(f"DELETE FROM {table} WHERE hour IN (SELECT DISTINCT hour FROM {added})")
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM scim_merged")
    con.execute(f"DROP TABLE scim_merged; DROP TABLE {added}")


def add_scim_batch(con: duckdb.DuckDBPyConnection, inserted_at, run_id: int | None) -> None:
    """Fold the requests a batch just inserted (``first_ingested_at = inserted_at``, this run) into the SCIM
    summaries. Call inside the batch's transaction, after the INSERT."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE scim_batch AS SELECT {_BATCH_COLUMNS} FROM scim_requests
                    WHERE first_ingested_at = $at AND ingest_run_id IS NOT DISTINCT FROM $run""",
                {"at": inserted_at, "run": run_id})
    batch = {"src": "scim_batch"}
    con.execute("CREATE OR REPLACE TEMP TABLE scim_add_hours AS " + decl.HOURS_SELECT.format_map(batch))
    _merge_hourly(con, "derived_scim_hours", _KEYS,
                  "sum(requests)::BIGINT AS requests, min(first_ts) AS first_ts, max(last_ts) AS last_ts",
                  "scim_add_hours")
    con.execute("CREATE OR REPLACE TEMP TABLE scim_add_latency AS " + decl.LATENCY_SELECT.format_map(batch))
    _merge_hourly(con, "derived_scim_latency", "operation, duration_ms", "sum(requests)::BIGINT AS requests",
                  "scim_add_latency")
    con.execute(f"INSERT INTO derived_scim_error_users {decl.ERROR_USERS_SELECT.format_map(batch)} "
                "EXCEPT SELECT * FROM derived_scim_error_users")
    batch_errors = f"({decl.ERROR_ANSWERS_SELECT.format_map(batch)})"
    con.execute(f"INSERT INTO derived_scim_error_answers SELECT * FROM {batch_errors}")
    con.execute(_ERROR_KEYS_UPSERT.format(select=decl.ERROR_KEYS_SELECT.format(src=batch_errors)))
    appended, = con.execute(f"INSERT INTO derived_scim_requests_by_user {decl.BY_USER_SELECT.format_map(batch)}"
                            ).fetchone()
    con.execute("UPDATE summary_state SET rows_written = rows_written + ? WHERE summary = ?",
                [appended, decl.SCIM_BY_USER.table])
    con.execute(f"INSERT INTO derived_scim_key_user_names {decl.KEY_USER_NAMES_SELECT.format_map(batch)} "
                "ON CONFLICT DO NOTHING")
    con.execute("DROP TABLE scim_batch")


def resort_due(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the requests appended to the userName-sorted copy since it was written exceed a quarter of it."""
    row = con.execute("SELECT rows_at_build, rows_written FROM summary_state WHERE summary = ?",
                      [decl.SCIM_BY_USER.table]).fetchone()
    return row is None or row[1] > decl.SCIM_BY_USER.resort_at * row[0]


def resort(con: duckdb.DuckDBPyConnection) -> None:
    """Rewrite the userName-sorted copy (and the key table, sorted by key) in one transaction. Nothing is keyed on
    their row numbers (the correlation results are keyed by request id), so nothing else is rebuilt."""
    with dbfile.transaction(con):
        for s in (decl.SCIM_BY_USER, decl.SCIM_KEY_USER_NAMES):
            summaries.build(con, s)


def refresh_correlation(con: duckdb.DuckDBPyConnection) -> None:
    """Rebuild the correlation summaries from ``correlation`` (inside the correlation's transaction)."""
    for s in decl.CORRELATION_SUMMARIES:
        summaries.build(con, s)
