"""Exports over the lake: a dataset answered by DuckDB over the lake or by Spark, written by the same writer as a
store's export (formula-safe CSV with ISO-8601 UTC times, or zstd Parquet) with the same manifest beside it.

The engine answers the dataset's one definition (:mod:`queries.lake_sql`) as an Arrow table in the dataset's order;
an in-memory DuckDB then writes that table with :mod:`queries.export`'s select (times, escaping) and ``COPY``. The
file and its manifest appear under temporary names and are renamed when both are complete. The manifest says which
engine, lake and tenants answered (``source``).
"""

from __future__ import annotations

import os

import pyarrow as pa

from ingest import __version__, dbfile
from queries.datasets import DATASETS
from queries.db import bind
from queries.export import (
    ExportResult,
    _copy_options,
    _last_successful_ingest,
    _quote_path,
    _wrapped_select,
    check_request,
    discard,
    filters_for_manifest,
    formula_like,
    publish,
    remove_stale_leftovers,
    temporary_beside,
)
from queries.filters import Filters
from queries.lake_sql import dataset_sql
from queries.manifest import build_manifest, manifest_path, sha256_file

ENGINES = ("duckdb", "spark")


def duckdb_result(lake_url: str, dataset: str, params: dict, tenants: list[str] | None) -> tuple[pa.Table, pa.Table]:
    """(the dataset's rows, the lake's ingest runs) from DuckDB over the lake."""
    from queries.lake_read import lake_connection

    con = lake_connection(lake_url, tenants)
    try:
        con.execute("SET TimeZone = 'UTC'")
        sql = dataset_sql(dataset)
        rows = con.execute(sql, bind(sql, params)).to_arrow_table()
        runs = con.execute("SELECT source, ended_at, outcome FROM ingest_runs").to_arrow_table()
        return rows, runs
    finally:
        con.close()


def spark_result(lake_url: str, dataset: str, params: dict, tenants: list[str] | None, *,
                 master: str | None = None, spark=None, registered: bool = False) -> tuple[pa.Table, pa.Table]:
    """(the dataset's rows, the lake's ingest runs) from Spark (``spark``: a session to use, else a new one on
    ``master``; ``registered``: its views already read ``tenants`` of ``lake_url``, see register_lake)."""
    from queries.spark_engine import register_lake, run_dataset, spark_session, stop_session

    own = spark is None
    spark = spark or spark_session(master)
    try:
        if not registered:
            register_lake(spark, lake_url, tenants)
        rows = run_dataset(spark, dataset, params)
        runs = spark.table("ingest_runs").select("source", "ended_at", "outcome").toArrow()
        return rows, runs
    finally:
        if own:
            stop_session(spark)


def write_result(rows: pa.Table, runs: pa.Table, dataset: str, out: str, *, fmt: str, manifest_filters: dict,
                 source: dict) -> ExportResult:
    """Write ``rows`` (a dataset's answer, in its order) to ``out`` and its manifest, as a store's export does."""
    out_dir, tmp = temporary_beside(out)
    remove_stale_leftovers(out_dir)
    con = dbfile.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("lake_result", rows)
        con.register("ingest_runs", runs)
        columns = [(r[0], r[1]) for r in con.execute("DESCRIBE SELECT * FROM lake_result").fetchall()]
        select, text_cols = _wrapped_select(columns, "lake_result", fmt)
        written = con.execute(f"COPY ({select}) TO '{_quote_path(tmp)}' ({_copy_options(fmt)})").fetchone()[0]
        time_column = DATASETS[dataset].time_column
        time_col = f'"{time_column}"' if time_column else "NULL::TIMESTAMPTZ"
        escaped_sql = " + ".join(f"count(*) FILTER (WHERE {formula_like(c)})" for c in text_cols) \
            if fmt == "csv" and text_cols else "0"
        newest, escaped = con.execute(f"SELECT max({time_col}), {escaped_sql} FROM lake_result").fetchone()
        manifest = build_manifest(
            dataset=dataset, file_name=os.path.basename(out), fmt=fmt, filters=manifest_filters, rows=int(written),
            sha256=sha256_file(tmp), escaped_cells=int(escaped or 0), newest_activity_time=newest,
            last_successful_ingest=_last_successful_ingest(con), columns=[{"name": n, "type": t} for n, t in columns],
            version=__version__)
        manifest["source"] = source
        publish(tmp, out, manifest)
    except BaseException:
        discard(tmp)
        raise
    finally:
        con.close()
    return ExportResult(path=out, rows=int(written), escaped_cells=int(escaped or 0),
                        manifest_path=manifest_path(out), manifest=manifest)


def export_lake(lake_url: str, dataset: str, out: str, *, engine: str = "duckdb", tenants: list[str] | None = None,
                filters: Filters | None = None, fmt: str = "csv", master: str | None = None, spark=None,
                registered: bool = False, **extra) -> ExportResult:
    """Write ``dataset`` over the lake ``lake_url`` (``tenants``' rows; all when None) to ``out`` and its manifest,
    answered by ``engine`` (``duckdb`` or ``spark``; ``spark``, ``master`` and ``registered``: see
    :func:`spark_result`)."""
    check_request(dataset, fmt, filters)
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r} (duckdb or spark)")
    params = (filters or Filters()).params() | extra
    if engine == "spark":
        rows, runs = spark_result(lake_url, dataset, params, tenants, master=master, spark=spark,
                                  registered=registered)
    else:
        rows, runs = duckdb_result(lake_url, dataset, params, tenants)
    source = {"engine": engine, "lake": lake_url, "tenants": tenants}
    return write_result(rows, runs, dataset, out, fmt=fmt, manifest_filters=filters_for_manifest(filters, extra),
                        source=source)
