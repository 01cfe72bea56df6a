"""A SQLite file named .duckdb is refused (exit 6) before DuckDB may fetch an extension to read it, and a store
whose blocks are damaged gives the documented exit 6, not a generic failure (issue 27, item 17)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3

import pytest

from ingest import dbfile, exitcodes
from tests.conftest import run_cli


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_no_connection_may_install_or_load_an_extension():
    con = dbfile.connect()
    try:
        settings = dict(con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN "
                                    "('autoinstall_known_extensions', 'autoload_known_extensions')").fetchall())
    finally:
        con.close()
    assert settings == {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}


@pytest.mark.parametrize("command", [("queries", "export", "events", "--out", "OUT"), ("ingest", "files", "IN"),
                                     ("ingest", "migrate")])
def test_a_sqlite_file_named_duckdb_is_refused_without_a_download(command, tmp_path, sim_dir):
    db = tmp_path / "looks.duckdb"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE invoices (n INTEGER)")
    before = _digest(db)
    args = [str(tmp_path / "o.csv") if a == "OUT" else str(sim_dir / "events.ndjson") if a == "IN" else a
            for a in command]
    done = run_cli(*args, "--db", str(db), env={"http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"})
    assert done.returncode == exitcodes.DATABASE, done.stderr
    assert "not a readable DuckDB database" in done.stderr
    assert "download" not in done.stderr.lower() and "http" not in done.stderr.lower()
    assert _digest(db) == before


def test_a_store_with_damaged_blocks_exits_6(demo_db, tmp_path, sim_dir):
    """The damage shows only when a damaged block is read: an export (read-only) leaves the file byte-identical;
    an ingest may have recorded its run (a block it could still write) before it met the damage."""
    db = tmp_path / "damaged.duckdb"
    shutil.copy(demo_db, db)
    size = db.stat().st_size
    with open(db, "r+b") as fh:  # garbage over the data blocks (the header stays readable)
        for offset in range(size // 4, size * 3 // 4, 256 * 1024):
            fh.seek(offset)
            fh.write(os.urandom(4096))
    before = _digest(db)
    export = run_cli("queries", "export", "events", "--out", str(tmp_path / "e.csv"), "--db", str(db))
    assert export.returncode == exitcodes.DATABASE and "Traceback" not in export.stderr, export.stderr
    assert _digest(db) == before
    load = run_cli("ingest", "files", str(sim_dir / "events.ndjson"), "--db", str(db))
    assert load.returncode == exitcodes.DATABASE, (load.returncode, load.stderr)
    assert "is damaged" in load.stderr and "Traceback" not in load.stderr
