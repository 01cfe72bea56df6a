"""Which SQL answers a dataset over the lake, and that SQL for Spark: the one definition, never a second copy.

A dataset's lake SQL is its reference query (:data:`queries.reference.REFERENCES`, or
:data:`~queries.reference.PREFLIGHT_REFERENCES`) when it has one, else its named query provided that query reads only
the lake's tables (:data:`ingest.lake.layout.LAKE_TABLES`): the named queries that read the store's summaries
(``derived_*``) have a reference that reads the source tables, which is what the lake holds.

DuckDB over the lake runs that SQL as written, with bound parameters. Spark runs it transpiled by SQLGlot: each
``$name`` parameter becomes a typed literal (NULL, a UTC TIMESTAMP, an ARRAY of strings, ...), DuckDB's
``'infinity'``/``'-infinity'`` timestamps become the first and last representable instants, ``epoch(ts)`` keeps
its microseconds, and the result is generated in SQLGlot's ``spark`` dialect.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import sqlglot
from sqlglot import exp

from ingest.lake.layout import LAKE_TABLES
from queries.catalog import QUERIES
from queries.datasets import DATASETS
from queries.reference import PREFLIGHT_REFERENCES, REFERENCES


class LakeSQLError(ValueError):
    """A dataset that cannot run over the lake (unknown, or its query reads a table the lake does not hold)."""


# Stand-ins for DuckDB's infinite timestamps in Spark (whose TIMESTAMP has no infinity): every real time lies
# strictly between them, so comparisons with the data give the same answers.
_PLUS_INFINITY = "9999-12-31 23:59:59.999999"
_MINUS_INFINITY = "0001-01-01 00:00:00"


def tables_read(sql: str) -> set[str]:
    """The tables ``sql`` (DuckDB) reads: every table reference that names no CTE of the statement."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return {table.name for table in tree.find_all(exp.Table) if table.name and table.name not in ctes}


def dataset_sql(name: str) -> str:
    """The DuckDB SQL of dataset ``name`` over the lake: its reference query if it has one, else its named query,
    which must read only lake tables (LakeSQLError otherwise, naming the tables it reads besides)."""
    if name not in DATASETS:
        raise LakeSQLError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    sql = REFERENCES.get(name) or PREFLIGHT_REFERENCES.get(name)
    if sql is None:
        sql = QUERIES[name].sql
        others = tables_read(sql) - set(LAKE_TABLES)
        if others:
            raise LakeSQLError(f"dataset {name!r} has no reference query and its named query reads "
                               f"{', '.join(sorted(others))}, which the lake does not hold")
    return sql


def _literal(value, type_hint: exp.DataType | None) -> exp.Expression:
    """A Spark literal for a bound parameter value."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    if isinstance(value, datetime):
        utc = (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
        return exp.cast(exp.Literal.string(utc.strftime("%Y-%m-%d %H:%M:%S.%f")), exp.DataType.build("TIMESTAMP"))
    if isinstance(value, date):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("DATE"))
    if isinstance(value, list | tuple):
        if not value:  # an empty array needs its element type
            element = type_hint or exp.DataType.build("ARRAY<STRING>", dialect="spark")
            return exp.cast(exp.Array(expressions=[]), element)
        return exp.Array(expressions=[_literal(v, None) for v in value])
    return exp.Literal.string(str(value))


def _infinite(node: exp.Expression) -> exp.Expression | None:
    """A Spark stand-in for ``'infinity'::TIMESTAMPTZ`` / ``'-infinity'::TIMESTAMPTZ``, else None."""
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal) and node.this.is_string \
            and node.to.is_type(exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMP):
        text = node.this.name.strip().lower()
        if text in ("infinity", "+infinity", "-infinity"):
            stamp = _MINUS_INFINITY if text.startswith("-") else _PLUS_INFINITY
            return exp.cast(exp.Literal.string(stamp), exp.DataType.build("TIMESTAMP"))
    return None


def _epoch(node: exp.Expression) -> exp.Expression | None:
    """DuckDB's ``epoch(ts)`` (seconds as a DOUBLE, microseconds kept) for Spark, whose UNIX_TIMESTAMP drops the
    fraction: ``CAST(UNIX_MICROS(ts) AS DOUBLE) / 1000000``, the same division DuckDB does."""
    if isinstance(node, exp.TimeToUnix):
        micros = exp.cast(exp.Anonymous(this="UNIX_MICROS", expressions=[node.this]), exp.DataType.build("DOUBLE"))
        return exp.Div(this=micros, expression=exp.Literal.number(1_000_000))
    return None


def bind_literals(sql: str, params: dict) -> exp.Expression:
    """``sql`` (DuckDB) parsed, with each ``$name`` replaced by its value in ``params`` as a literal (missing: NULL)
    and DuckDB's infinite timestamps replaced by Spark's first and last instants."""
    tree = sqlglot.parse_one(sql, read="duckdb")

    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name:
            hint = node.parent.to if isinstance(node.parent, exp.Cast) else None
            return _literal(params.get(node.name), hint)
        return _infinite(node) or _epoch(node) or node

    return tree.transform(replace)


def spark_sql(name: str, params: dict | None = None) -> str:
    """Dataset ``name``'s SQL for Spark with ``params`` bound as literals."""
    return bind_literals(dataset_sql(name), params or {}).sql(dialect="spark")
