"""The bounded-memory export path (issue 7 B7) writes what a plain in-memory query says it should.

Each export runs on its own memory-limited DuckDB, sorts on one thread, and computes the manifest's
summary (newest time, escaped cells) beside the COPY from the dataset's SQL without its ORDER BY and
with an ``ascii()`` test instead of the regex. Here every dataset of the demo database is exported and
compared with a straightforward reference: the same SQL run in one in-memory query, rows in order,
cells neutralised by the original regex.
"""

from __future__ import annotations

import csv
import json

import duckdb
import pytest

from queries.datasets import DATASETS
from queries.db import bind
from queries.export import FORMULA_PREFIX, dataset_sql, export, formula_like, unordered
from queries.filters import Filters

TRICKY = ["", "=1+1", "+x", "-2", "@SUM(1)", "\tx", "\rx", "\nx", "a=b", " =x", "'=x", "é=", "😀", "\x00=",
          "ＡＢ", "=", "-"]


def test_the_ascii_test_agrees_with_the_formula_regex():
    con = duckdb.connect()
    try:
        for value in [*TRICKY, None]:
            by_regex, by_ascii = con.execute(
                f"SELECT regexp_matches($v::VARCHAR, '{FORMULA_PREFIX}'), {formula_like('$v')}", {"v": value}
            ).fetchone()
            assert by_regex == by_ascii, repr(value)
    finally:
        con.close()


def test_unordered_drops_only_a_final_top_level_order_by():
    assert unordered("SELECT a FROM t ORDER BY a, b") == "SELECT a FROM t"
    assert unordered("SELECT a FROM t\nORDER BY coalesce(a, b), c NULLS LAST\n") == "SELECT a FROM t"
    for kept in ("SELECT a FROM t ORDER BY a LIMIT 5", "SELECT a FROM t ORDER BY a OFFSET 2",
                 "SELECT row_number() OVER (ORDER BY a) FROM t", "SELECT * FROM (SELECT a FROM t ORDER BY a)"):
        assert unordered(kept) == kept


def _reference(db: str, dataset: str) -> tuple[list[tuple], int]:
    """The dataset's rows (times as DuckDB gives them) in order, and the cells the regex would escape."""
    con = duckdb.connect(db, read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        sql = dataset_sql(con, dataset)
        params = bind(sql, Filters().params())
        rows = con.execute(sql, params).fetchall()
        text_cols = [name for name, col_type, *_ in con.execute(f"DESCRIBE {sql}", params).fetchall()
                     if col_type in ("VARCHAR", "JSON")]
        escaped = con.execute("SELECT " + (" + ".join(
            f"count(*) FILTER (WHERE regexp_matches(\"{c}\"::VARCHAR, '{FORMULA_PREFIX}'))" for c in text_cols
        ) or "0") + f" FROM ({sql}) AS d", params).fetchone()[0]
        return rows, int(escaped)
    finally:
        con.close()


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_dataset_exports_the_reference_rows_in_order(demo_db, tmp_path, dataset):
    db = str(demo_db)
    want_rows, want_escaped = _reference(db, dataset)
    out = tmp_path / f"{dataset}.csv"
    result = export(db, dataset, str(out))
    assert result.rows == len(want_rows)
    assert result.escaped_cells == want_escaped
    with out.open(newline="", encoding="utf-8") as fh:
        got = list(csv.reader(fh))[1:]
    assert len(got) == len(want_rows)
    key_columns = [i for i, name in enumerate(DATASETS[dataset].columns) if name.endswith("id")][:2]
    for got_row, want_row in zip(got, want_rows):  # same order: compare the id-like cells row by row
        for i in key_columns:
            want = "" if want_row[i] is None else str(want_row[i])
            assert got_row[i] in (want, "'" + want), (dataset, got_row[i], want)
    manifest = json.loads((tmp_path / f"{dataset}.csv.manifest.json").read_text())
    assert manifest["rows"] == len(want_rows) and manifest["escaped_cells"] == want_escaped
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no spill or partial files left


def test_an_export_that_outgrows_its_memory_limit_is_written_again_with_a_larger_one(demo_db, tmp_path, monkeypatch):
    """A sort whose merge needs more than the limit must not fail the export: the file comes out whole."""
    import duckdb
    import pytest

    from queries import export as export_module

    normal = tmp_path / "normal.csv"
    export_module.export(str(demo_db), "events", str(normal))
    monkeypatch.setattr(export_module, "EXPORT_MEMORY_LIMIT", "1MB")  # far too small for the demo's sort
    with pytest.raises(duckdb.OutOfMemoryException):  # proves the first attempt really runs out
        export_module._export_once(str(demo_db), "events", str(tmp_path / "x.csv"), filters=None, fmt="csv",
                                   memory_limit="1MB")
    retried = tmp_path / "retried.csv"
    result = export_module.export(str(demo_db), "events", str(retried))
    assert retried.read_bytes() == normal.read_bytes()
    assert result.rows > 0 and not list(tmp_path.glob(".*"))  # no partial file or spill folder left
