"""The database file: every way provlens opens it, in one place.

- **Writers** (:func:`open_for_write`, used by :class:`ingest.store.Store`): one read-write connection per process
  and file (a second would be a second DuckDB instance writing the same file), attached with
  ``STORE_ROW_GROUP_SIZE``; while another process holds DuckDB's lock the writer retries with backoff and says so
  with a fresh ``<db>.write-wanted`` marker beside the file, and readers make way.
- **Readers** (:func:`read_connection`, used by pages, exports and benchmarks through :mod:`queries.db`): a
  process-wide in-memory DuckDB "host" ATTACHes the file READ_ONLY and keeps the attachment for
  ``PROVLENS_READ_KEEP_S`` seconds after the last call (a page's queries and the next click find its blocks
  cached); a waiting writer, a change to the file, or this process opening it for writing makes the attachment go.
  :func:`isolated_read_connection` is a reader on a DuckDB of its own (memory-capped, spilling), for exports.
- Every reader checks the store is current (:func:`check_current`): a newer schema is refused ("upgrade
  provlens"), an older one or summaries built by another definition send the user to ``ingest migrate``.
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb


class StoreError(Exception):
    """A database problem explained for a person (what happened, what to do)."""


class DatabaseLocked(StoreError):
    """Another process holds the database's write lock for longer than we were willing to wait."""


class NotAProvlensDatabase(StoreError):
    """The file exists but is not a provlens database; it is never overwritten."""


# Every DuckDB instance provlens makes: it never installs or loads an extension on its own. A foreign file with a
# .duckdb name (a SQLite database) would otherwise make DuckDB download its scanner over plain http to open it.
NO_AUTO_EXTENSIONS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def connect(path: str = ":memory:", *, read_only: bool = False,
            config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with extension autoinstall and autoload off (the only way provlens makes one)."""
    return duckdb.connect(path, read_only=read_only, config={**NO_AUTO_EXTENSIONS, **(config or {})})


def disk_full(exc: BaseException) -> bool:
    """Whether an error says a write found no room (a full disk or quota, or a file-size limit)."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return True
    text = str(exc).lower()
    return isinstance(exc, duckdb.Error) and ("no space left" in text or "file too large" in text
                                              or "disk quota" in text)


def is_corruption(exc: BaseException) -> bool:
    """Whether a DuckDB error says the file's blocks are damaged (a checksum or a corrupt-file error)."""
    text = str(exc).lower()
    return "corrupt" in text or "checksum" in text


def _is_lock_error(exc: Exception) -> bool:
    msg = str(exc).lower()
    return "lock" in msg and ("conflicting" in msg or "could not set" in msg)


# ---- writer priority (issue 8: readers beside writers). DuckDB's file lock is first come, first served:
# dashboard readers opening short connections back to back can keep a writer out indefinitely. A writer
# that finds the file locked touches ``<db>.write-wanted`` on every retry; readers hold back while that
# marker is fresh, so the writer gets in as soon as the current readers close. A marker left by a killed
# writer goes stale after WRITER_MARK_FRESH_S and is ignored (it works across hosts/containers too).
WRITER_MARK_FRESH_S = 2.5
READER_YIELD_MAX_S = 10.0


def _is_local_file(path: str) -> bool:
    """Whether ``path`` names a database file on this machine (not ``:memory:``)."""
    return path != ":memory:"


def _writer_mark(path: str) -> str | None:
    return path + ".write-wanted" if _is_local_file(path) else None


def _touch_writer_mark(mark: str | None) -> bool:
    if mark is None:
        return False
    try:
        with open(mark, "a"):
            pass
        os.utime(mark)
        return True
    except OSError:
        return False


def _clear_writer_mark(mark: str | None) -> None:
    try:
        if mark:
            os.unlink(mark)
    except OSError:
        pass


def _writer_waits(mark: str | None) -> bool:
    """Whether a writer has said (with a fresh marker) that it is waiting for the lock."""
    if mark is None:
        return False
    try:
        return time.time() - os.stat(mark).st_mtime <= WRITER_MARK_FRESH_S
    except OSError:
        return False


def writer_waiting(path: str) -> bool:
    """Whether a writer is waiting for ``path``'s lock right now (readers holding it should let go)."""
    return _writer_waits(_writer_mark(path))


def _yield_to_writer(mark: str | None, deadline: float) -> None:
    """A reader waits (bounded) while a writer is waiting for the lock."""
    give_up = min(deadline, time.monotonic() + READER_YIELD_MAX_S)
    while time.monotonic() < give_up and _writer_waits(mark):
        time.sleep(0.02)


def retry_while_locked(path: str, attempt, *, read_only: bool, timeout: float):
    """Call ``attempt()`` (opening or attaching ``path``) until DuckDB's file lock lets it through, with
    backoff, for at most ``timeout`` s. Readers first give way to a writer that is waiting for the lock;
    a waiting writer says so with a fresh ``<db>.write-wanted`` marker (see ``WRITER_MARK_FRESH_S``)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    mark = _writer_mark(path)
    marked = False
    try:
        while True:
            if read_only:
                _yield_to_writer(mark, deadline)
            try:
                return attempt()
            except duckdb.IOException as exc:
                if not _is_lock_error(exc):
                    raise _explain_open_error(path, exc) from exc
                if time.monotonic() >= deadline:
                    raise DatabaseLocked(
                        f"database {path} is locked by another process (an ingest or a dashboard reader) "
                        f"for more than {timeout:.0f} s; try again when it finishes"
                    ) from exc
                if not read_only:
                    marked = _touch_writer_mark(mark) or marked
                    delay = min(delay, 0.1)  # readers are making way: try again soon
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except duckdb.Error as exc:
                raise _explain_open_error(path, exc) from exc
    finally:
        if marked:
            _clear_writer_mark(mark)


def sql_literal(text: str) -> str:
    """``text`` as an SQL string literal (for statements that take no parameters, such as ATTACH)."""
    return "'" + text.replace("'", "''") + "'"


# Rows per row group in what a Store writes (DuckDB's default: 122,880). A commit smaller than a row group
# leaves it partial, and the commit's checkpoint compresses the whole partial group again: a Graph backfill's
# 50,000-event commits paid for the same rows two to three times (B1: 1.9 s of COMMIT for 4 such commits).
# With groups smaller than a commit, DuckDB writes the full ones while the INSERT runs and the commit
# writes little. DuckDB does not keep the size in the file, so every writer attaches with it (a writer
# with another size would merge the small groups on its checkpoints). Costs ~20% more file (B9).
STORE_ROW_GROUP_SIZE = 16_384


def connect_with_retry(path: str, read_only: bool, timeout: float) -> duckdb.DuckDBPyConnection:
    """Open ``path`` (UTC, no progress bar), waiting while another process holds a conflicting lock. A file
    opened read-write is attached to an in-memory host with ``STORE_ROW_GROUP_SIZE`` and made the default
    catalog (``USE``), so SQL reads and writes it as if it had been opened directly."""
    def attempt() -> duckdb.DuckDBPyConnection:
        if read_only or not _is_local_file(path):
            con = connect(path, read_only=read_only)
        else:
            con = connect()
            try:
                # DuckDB's own default for a file; an in-memory host would spill to ./.tmp instead
                con.execute("SET temp_directory = ?", [path + ".tmp"])
                con.execute(f"ATTACH {sql_literal(path)} AS provlens_store (ROW_GROUP_SIZE {STORE_ROW_GROUP_SIZE})")
                con.execute("USE provlens_store")
            except BaseException:
                con.close()
                raise
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        return con

    return retry_while_locked(path, attempt, read_only=read_only, timeout=timeout)


def _explain_open_error(path: str, exc: Exception) -> StoreError:
    msg = str(exc)
    lowered = msg.lower()
    if "not a valid duckdb database" in lowered or "corrupt" in lowered or "checksum" in lowered \
            or "unable to read" in lowered or "invalid magic" in lowered or "extension" in lowered:
        return NotAProvlensDatabase(
            f"{path} is not a readable DuckDB database ({msg.splitlines()[0]}); "
            "it was left untouched - point --db/PROVLENS_DB at another file"
        )
    return StoreError(f"cannot open database {path}: {msg.splitlines()[0]}")


_OPEN_IN_PROCESS: set[str] = set()
_OPEN_LOCK = threading.Lock()


def let_readers_go(path: str) -> None:
    """Before this process opens ``path`` itself: its kept read attachment lets go first. DuckDB refuses a
    read-write handle on a file this process has attached ("Unique file handle conflict"), and a writer must
    not leave a reader serving stale blocks."""
    if _is_local_file(path):
        release(path)


def _claim_in_process(path: str) -> str | None:
    """DuckDB's file lock is per process: a second read-write connection to the same file from this
    process would be a second database instance writing the same file (corruption). Refuse it loudly."""
    if not _is_local_file(path):
        return None
    let_readers_go(path)
    key = os.path.realpath(path)
    with _OPEN_LOCK:
        if key in _OPEN_IN_PROCESS:
            raise RuntimeError(f"{path} is already open for writing in this process (a second writer "
                               "connection would corrupt it)")
        _OPEN_IN_PROCESS.add(key)
    return key


def _release_in_process(key: str | None) -> None:
    if key is not None:
        with _OPEN_LOCK:
            _OPEN_IN_PROCESS.discard(key)


class DatabaseMissing(StoreError):
    """The configured database file does not exist yet."""


_host: duckdb.DuckDBPyConnection | None = None
_host_lock = threading.Lock()
_aliases = itertools.count(1)


def _host_connection() -> duckdb.DuckDBPyConnection:
    """The process's in-memory DuckDB that attaches database files per call (created once)."""
    global _host
    with _host_lock:
        if _host is None:
            host = connect()
            host.execute("SET GLOBAL TimeZone = 'UTC'")
            # Bounded memory for a long-running reader (the dashboard): DuckDB's buffers and hash tables stay
            # under PROVLENS_READ_MEMORY (default 512MB) and spill to a temp folder beyond it, and freed
            # memory goes back to the system soon instead of staying with the process.
            host.execute("SET GLOBAL memory_limit = ?", [os.environ.get("PROVLENS_READ_MEMORY", "512MB")])
            host.execute("SET GLOBAL temp_directory = ?", [_spill_directory()])
            host.execute("SET GLOBAL allocator_flush_threshold = '32MB'")
            _host = host
        return _host


def _spill_directory() -> str:
    import tempfile

    # POSIX: /tmp is shared by every account, so the folder is per user id. Windows has no os.getuid, and its temp
    # folder is per user already.
    owner = f"-{os.getuid()}" if hasattr(os, "getuid") else ""
    return os.path.join(tempfile.gettempdir(), f"provlens-read-spill{owner}")


def _attach(cur: duckdb.DuckDBPyConnection, db_path: str, alias: str, timeout: float) -> None:
    """ATTACH the file read-only, waiting while a writer holds its lock (giving way to a waiting writer)."""
    retry_while_locked(db_path, lambda: cur.execute(f"ATTACH {sql_literal(db_path)} AS {alias} (READ_ONLY)"),
                       read_only=True, timeout=timeout)


class StoreOutOfDate(StoreError):
    """The store was written by another provlens version: its schema or its summaries are not this code's."""


def check_current(cur: duckdb.DuckDBPyConnection, alias: str, db_path: str) -> None:
    """Refuse to read a store whose schema or summaries another provlens version wrote: a newer one says to
    upgrade provlens, an older one (or one whose summaries' definitions changed since they were built) to run
    ``python -m ingest migrate``, which rebuilds them. A file without provlens's schema is left to fail as it
    will (the caller explains foreign files)."""
    from ingest import schema, summaries

    tables = {t for (t,) in cur.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = ?",
                                        [alias]).fetchall()}
    if "schema_version" not in tables:
        return
    version = cur.execute(f"SELECT max(version) FROM {alias}.schema_version").fetchone()[0] or 0
    if version > schema.LATEST_VERSION:
        raise StoreOutOfDate(f"{db_path} was written by a newer provlens (schema {version}, this one reads "
                             f"{schema.LATEST_VERSION}): upgrade provlens")
    stale: list[str] = []
    if version == schema.LATEST_VERSION and "summary_state" in tables:
        built = dict(cur.execute(f"SELECT summary, fingerprint FROM {alias}.summary_state").fetchall())
        # A summary with no state is being rebuilt (its rows were emptied with it: it shows nothing, never a wrong
        # row); one with another fingerprint, or none at all, was written by other code.
        stale = [s.table for s in summaries.declared() if s.table not in tables
                 or built.get(s.table, s.fingerprint()) != s.fingerprint()]
    if version < schema.LATEST_VERSION or stale:
        what = f"schema {version}" if version < schema.LATEST_VERSION else f"summaries {', '.join(stale)}"
        raise StoreOutOfDate(f"{db_path} was written by an older provlens ({what}): run `python -m ingest "
                             f"migrate --db {db_path}` (or the next ingest) to upgrade it")


def file_signature(path: str) -> tuple:
    """Changes whenever the file or its WAL is written or replaced (inode, size, mtime of each)."""
    parts = []
    for p in (path, path + ".wal"):
        try:
            st = os.stat(p)
            parts.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except FileNotFoundError:
            parts.append(None)
    return tuple(parts)


KEEP_DEFAULT_S = 10.0  # when PROVLENS_READ_KEEP_S is not set (the test suite sets 0 for its own process)


def keep_seconds() -> float:
    """How long an attachment is kept after its last call (``PROVLENS_READ_KEEP_S``; 0 = not kept)."""
    try:
        return max(0.0, float(os.environ.get("PROVLENS_READ_KEEP_S", KEEP_DEFAULT_S)))
    except ValueError:
        return KEEP_DEFAULT_S


@dataclass
class _Attachment:
    """One ATTACH of a file: how many calls use it, since when it is idle, and whether it may be reused."""

    key: str  # the file's real path
    path: str  # as the caller named it (the writer marker sits beside it)
    alias: str
    signature: tuple
    in_flight: int = 1
    last_used: float = 0.0
    retired: bool = False  # no new call uses it; detached when the last one ends


_kept: dict[str, _Attachment] = {}  # real path -> the attachment new calls may reuse
_kept_lock = threading.Lock()  # guards _kept and every attachment's counters
_watcher: threading.Thread | None = None
_WATCH_S = 0.05  # how often the watcher looks for a waiting writer or an idle attachment


def _detach(att: _Attachment) -> None:
    cur = _host_connection().cursor()
    try:
        cur.execute(f"DETACH {att.alias}")  # releases the file and its lock
    except duckdb.Error:
        pass  # already gone with the host (interpreter exit)
    finally:
        cur.close()


def _retire_locked(att: _Attachment) -> None:
    """No new call may use ``att``; detach it now if no call runs on it. Caller holds ``_kept_lock``."""
    att.retired = True
    if _kept.get(att.key) is att:
        del _kept[att.key]
    if att.in_flight == 0:
        _detach(att)


def release(path: str | None = None) -> None:
    """Let go of the kept attachment of ``path`` (of every file if None); calls running finish first."""
    key = None if path is None else os.path.realpath(path)
    with _kept_lock:
        for att in [a for k, a in _kept.items() if key is None or k == key]:
            _retire_locked(att)


atexit.register(release)


def _watch() -> None:
    """Detach kept attachments that are idle past the keep time, or that a waiting writer needs."""
    global _watcher
    while True:
        time.sleep(_WATCH_S)
        with _kept_lock:
            now = time.monotonic()
            keep = keep_seconds()
            for att in list(_kept.values()):
                if att.in_flight == 0 and (now - att.last_used > keep or writer_waiting(att.path)):
                    _retire_locked(att)
            if not _kept:
                _watcher = None
                return


def _acquire(db_path: str, key: str, cur: duckdb.DuckDBPyConnection, timeout: float) -> _Attachment:
    """The kept attachment of the file if it is still good, else a new ATTACH (kept if keeping is on)."""
    global _watcher
    signature = file_signature(db_path)
    with _kept_lock:
        att = _kept.get(key)
        if att is not None:
            if att.signature == signature and not writer_waiting(db_path):
                att.in_flight += 1
                return att
            _retire_locked(att)  # changed underneath, or a writer wants in: this call attaches afresh
    att = _Attachment(key, db_path, f"provlens_read_{next(_aliases)}", signature)
    _attach(cur, db_path, att.alias, timeout)
    try:
        check_current(cur, att.alias, db_path)
    except StoreError:
        _detach(att)
        raise
    with _kept_lock:
        if keep_seconds() > 0 and key not in _kept and file_signature(db_path) == signature:
            _kept[key] = att
            if _watcher is None:
                _watcher = threading.Thread(target=_watch, name="provlens-read-keeper", daemon=True)
                _watcher.start()
        else:
            att.retired = True  # used by this call only
    return att


def _finish(att: _Attachment) -> None:
    with _kept_lock:
        att.in_flight -= 1
        att.last_used = time.monotonic()
        if att.retired and att.in_flight == 0:
            _detach(att)


@contextmanager
def read_connection(db_path: str, *, lock_timeout: float = 20.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to ``db_path`` for one call (the attachment may be kept for the next one)."""
    if not os.path.exists(db_path):
        raise DatabaseMissing(f"database {db_path} does not exist; run `python -m ingest demo` or an ingest")
    cur = _host_connection().cursor()
    try:
        att = _acquire(db_path, os.path.realpath(db_path), cur, lock_timeout)
        try:
            cur.execute(f"USE {att.alias}")
            cur.execute("SET enable_progress_bar = false")
            yield cur
        finally:
            try:
                cur.execute("USE memory")
            finally:
                _finish(att)
    finally:
        cur.close()


ISOLATED_ALIAS = "provlens_export"  # the file's name in an isolated reader's catalog


@contextmanager
def isolated_read_connection(db_path: str, spill_dir: str, *, memory_limit: str,
                             lock_timeout: float = 20.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection on a DuckDB of its own: memory-limited and spilling to ``spill_dir``, so an export
    sorting millions of rows does not hold them all in memory (the dashboard's shared host keeps its own
    settings)."""
    if not os.path.exists(db_path):
        raise DatabaseMissing(f"database {db_path} does not exist; run `python -m ingest demo` or an ingest")
    con = connect(config={"memory_limit": memory_limit, "temp_directory": spill_dir})
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        attach = f"ATTACH {sql_literal(db_path)} AS {ISOLATED_ALIAS} (READ_ONLY)"
        retry_while_locked(db_path, lambda: con.execute(attach), read_only=True, timeout=lock_timeout)
        check_current(con, ISOLATED_ALIAS, db_path)
        con.execute(f"USE {ISOLATED_ALIAS}")
        yield con
    finally:
        con.close()  # detaches the file (releases its lock); the spill files go with the instance


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN; COMMIT when the block ends, ROLLBACK (and re-raise) when it fails."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
