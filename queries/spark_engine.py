"""Spark over the lake: a SparkSession, temporary views named like the store's source tables over the lake's Delta
tables (one tenant's or several tenants' rows), and a dataset run there as Arrow.

The SQL is the dataset's one definition (:mod:`queries.lake_sql`), transpiled from DuckDB by SQLGlot. Reading the
lake: a local path reads each Delta table's current snapshot (its file list from delta-rs) with Spark's own Parquet
reader; ``az://``/``abfss://`` (this package ships no hadoop-azure jars) goes through a Spark Python data source
whose partitions (one per tenant and day) read the snapshot's files with delta-rs on the executors. On a cluster
with Delta support (Databricks, Fabric, Synapse, or ``delta-spark``), :func:`register_lake` can read the tables with
``format("delta")`` instead (``native_delta=True``).
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from ingest.lake.layout import (
    DAY,
    LAKE_TABLES,
    TENANT,
    arrow_schema,
    check_tenant,
    is_remote,
    storage_options,
    table_uri,
)
from queries.lake_sql import spark_sql

DEFAULT_MASTER = "local[2]"
SPARK_INSTALL_HINT = "pip install 'provlens[spark]' and Java 17 (Debian: openjdk-17-jre-headless)"
SOURCE_NAME = "provlens_lake"
_ROOT = str(Path(__file__).resolve().parents[1])
_LOG_CONFIG = Path(__file__).resolve().with_name("spark-log4j2.properties")


class SparkUnavailable(RuntimeError):
    """PySpark or Java is missing: the message says what to install."""


class LakeMissing(RuntimeError):
    """The lake (or one of its tables) is not there."""


def _spark_type(dtype: pa.DataType) -> str:
    """The Spark SQL type name of a lake column's Arrow type."""
    if pa.types.is_list(dtype):
        return f"ARRAY<{_spark_type(dtype.value_type)}>"
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMP"
    return {pa.string(): "STRING", pa.int32(): "INT", pa.int64(): "BIGINT", pa.float64(): "DOUBLE",
            pa.bool_(): "BOOLEAN", pa.date32(): "DATE"}[dtype]


def spark_ddl(table: str, *, partitions: bool = True) -> str:
    """The lake table's schema as a Spark DDL string (with or without the two partition columns)."""
    fields = [f for f in arrow_schema(table) if partitions or f.name not in (TENANT, DAY)]
    return ", ".join(f"`{f.name}` {_spark_type(f.type)}" for f in fields)


def spark_session(master: str | None = None, *, app_name: str = "provlens"):
    """A SparkSession on ``master`` (default: PROVLENS_SPARK_MASTER, else local[2]) with UTC as session time zone
    and quiet logs. SparkUnavailable when PySpark or Java is missing."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailable(f"--engine spark needs PySpark: {SPARK_INSTALL_HINT}") from exc
    if not os.environ.get("JAVA_HOME") and not shutil.which("java"):
        raise SparkUnavailable(f"--engine spark needs Java (none on PATH and JAVA_HOME unset): {SPARK_INSTALL_HINT}")
    # The Python data source runs in Spark's Python workers: they import this package and use this interpreter.
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if _ROOT not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [_ROOT, *paths] if p)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # a local master binds to loopback, not the network
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    java_options = f"-Duser.timezone=UTC -Dlog4j2.configurationFile=file:{_LOG_CONFIG}"
    builder = (SparkSession.builder.master(master or os.environ.get("PROVLENS_SPARK_MASTER") or DEFAULT_MASTER)
               .appName(app_name)
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.driver.extraJavaOptions", java_options)
               .config("spark.executor.extraJavaOptions", java_options)
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true"))
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # Java missing or too old: PySpark raises from the gateway launch
        raise SparkUnavailable(f"Spark did not start ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}): "
                               f"{SPARK_INSTALL_HINT}") from exc
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _delta(lake_url: str, table: str, version: int | None = None):
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(table_uri(lake_url, table), version=version, storage_options=storage_options(lake_url))
    except TableNotFoundError as exc:
        raise LakeMissing(f"no lake table {table!r} at {table_uri(lake_url, table)}: copy a store there first "
                          "(python -m queries lake --db F --to URL)") from exc


def _tenant_filter(tenants: list[str] | None) -> str:
    if tenants is None:
        return "true"
    return f"{TENANT} IN ({', '.join(repr(check_tenant(t)) for t in tenants) or 'NULL'})"


def _native_frame(spark, lake_url: str, table: str, tenants: list[str] | None):
    """The table's current snapshot read with Spark's Parquet reader (local lake): the snapshot's files of
    ``tenants`` (all when None), with the table folder as base path so lake_tenant and lake_day come from the
    file paths."""
    dt = _delta(lake_url, table)
    chosen = None if tenants is None else [(TENANT, "in", [check_tenant(t) for t in tenants])]
    files = [uri.removeprefix("file://") for uri in dt.file_uris(partition_filters=chosen)] if tenants != [] else []
    schema = spark_ddl(table)
    if not files:
        return spark.createDataFrame([], schema)
    return spark.read.schema(schema).option("basePath", table_uri(lake_url, table)).parquet(*files)


def _source_frame(spark, lake_url: str, table: str, tenants: list[str] | None):
    """The table's current snapshot read through the Python data source (object storage)."""
    version = _delta(lake_url, table).version()
    reader = (spark.read.format(SOURCE_NAME).schema(spark_ddl(table)).option("uri", table_uri(lake_url, table))
              .option("version", str(version)))
    if tenants is not None:
        reader = reader.option("tenants", ",".join(check_tenant(t) for t in tenants))
    return reader.load()


def stop_session(spark) -> None:
    """Stop ``spark`` and the JVM behind it. ``SparkSession.stop`` leaves PySpark's gateway JVM running for the rest
    of the Python process (about 1.3 GB, and busy); that JVM exits when the pipe to its stdin closes."""
    from pyspark import SparkContext

    spark.stop()
    gateway = SparkContext._gateway
    if gateway is None:
        return
    gateway.shutdown()
    proc = getattr(gateway, "proc", None)
    if proc is not None:
        proc.stdin.close()
        proc.wait(timeout=60)
    SparkContext._gateway = None
    SparkContext._jvm = None


def register_lake(spark, lake_url: str, tenants: list[str] | None = None, *, native_delta: bool = False,
                  cache: bool = False) -> None:
    """Temporary views named like the store's source tables over the lake's tables: ``tenants``' rows (all when
    None), without the partition columns, so their columns are the store's. ``native_delta``: read with Spark's
    Delta reader (a session with Delta support). ``cache``: keep each view's rows once read (memory, then disk),
    for several datasets in one session: a reference query scans events several times, and each scan through
    the Python data source reads the files again."""
    if not is_remote(lake_url) and not os.path.isdir(table_uri(lake_url, "events")):
        raise LakeMissing(f"no lake at {lake_url} (no events table there): copy a store there first "
                          "(python -m queries lake --db F --to URL)")
    remote = is_remote(lake_url)
    if remote and not native_delta:
        register_source(spark)
    for table in LAKE_TABLES:
        if native_delta:
            frame = spark.read.format("delta").load(table_uri(lake_url, table))
        elif remote:
            frame = _source_frame(spark, lake_url, table, tenants)
        else:
            frame = _native_frame(spark, lake_url, table, tenants)
        if spark.catalog.tableExists(table) and spark.catalog.isCached(table):
            spark.catalog.uncacheTable(table)
        frame.where(_tenant_filter(tenants)).drop(TENANT, DAY).createOrReplaceTempView(table)
        if cache:
            spark.catalog.cacheTable(table)


def run_dataset(spark, name: str, params: dict | None = None) -> pa.Table:
    """Dataset ``name`` on the views :func:`register_lake` made, with the shared filters and the dataset's own
    parameters in ``params`` (as :meth:`queries.filters.Filters.params` gives them), as an Arrow table."""
    return spark.sql(spark_sql(name, params or {})).toArrow()


# ------------------------------------------------------------------------------------------- the Python data source
def _partition_values(uri: str, version: int, tenants: list[str] | None, options: dict) -> list[tuple[str, str]]:
    from deltalake import DeltaTable

    dt = DeltaTable(uri, version=version, storage_options=options)
    values = {(p[TENANT], p[DAY]) for p in dt.partitions()}
    return sorted(v for v in values if tenants is None or v[0] in tenants)


def _make_source():
    from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition

    class LakeReader(DataSourceReader):
        def __init__(self, schema, options):
            self.schema = schema
            self.uri = options["uri"]
            self.version = int(options["version"])
            self.tenants = options["tenants"].split(",") if options.get("tenants") else None

        def _options(self) -> dict:
            return storage_options(self.uri)

        def partitions(self):
            return [InputPartition((t, d)) for t, d in _partition_values(self.uri, self.version, self.tenants,
                                                                       self._options())]

        def read(self, partition) -> Iterator[pa.RecordBatch]:
            from deltalake import DeltaTable

            if partition is None or partition.value is None:  # an empty table: Spark asks for one partition
                return
            tenant, day = partition.value
            dt = DeltaTable(self.uri, version=self.version, storage_options=self._options())
            dataset = dt.to_pyarrow_dataset(partitions=[(TENANT, "=", tenant), (DAY, "=", day)])
            names = self.schema.fieldNames()
            for batch in dataset.to_batches(columns=[n for n in names if n not in (TENANT, DAY)]):
                n = batch.num_rows
                columns = {c: batch.column(c) for c in batch.schema.names}
                columns[TENANT] = pa.array([tenant] * n, pa.string())
                columns[DAY] = pa.array([day] * n, pa.string()).cast(pa.date32())
                yield pa.RecordBatch.from_arrays([columns[c] for c in names], names=names)

    class LakeSource(DataSource):
        """Reads one Delta table of the lake at a version through delta-rs (options: uri, version, tenants)."""

        @classmethod
        def name(cls) -> str:
            return SOURCE_NAME

        def schema(self):
            raise ValueError("the provlens lake source needs a schema (.schema(spark_ddl(table)))")

        def reader(self, schema):
            return LakeReader(schema, self.options)

    return LakeSource


def register_source(spark) -> None:
    """Register the lake's Python data source (``format("provlens_lake")``) with ``spark``."""
    spark.dataSource.register(_make_source())
