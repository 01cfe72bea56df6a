"""``python -m ingest run``: run every source configured in provlens.toml once, or every ``--every``.

A non-blocking file lock (``<db>.run.lock`` or ``--lock``; the ``filelock`` library: ``flock`` on POSIX, ``msvcrt``
on Windows) makes a second concurrent run exit 0 at once with a message, so cron, a systemd timer and a Kubernetes
CronJob can all fire freely. Sources are
``[[sources]]`` tables with a ``type``; :data:`SOURCE_TYPES` maps each type to its runner (add a new
source type by adding one entry). Without ``[[sources]]``, a ``[graph]`` table is one Graph source.

    db = "data/provlens.duckdb"
    [[sources]]
    type = "graph"
    tenant_id = "..."
    client_id = "..."
    service_principal_ids = ["..."]
    [[sources]]
    type = "files"
    paths = ["exports/*.json"]
    [[sources]]
    type = "blobs"
    account_url = "https://<account>.blob.core.windows.net"
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from collections.abc import Callable
from datetime import datetime, timezone

import filelock

from ingest import exitcodes, metrics
from ingest.config import ConfigError, load_toml
from ingest.graph.log import RunLog

SourceRunner = Callable[[dict, str, argparse.Namespace, RunLog], int]


def _run_graph_source(section: dict, db: str, args: argparse.Namespace, log: RunLog) -> int:
    from ingest.graph.command import run_graph, settings_from

    settings = settings_from(None, section, db)
    settings.quiet = bool(args.quiet)
    return run_graph(settings, log)


def _run_files_source(section: dict, db: str, args: argparse.Namespace, log: RunLog) -> int:
    from ingest.file_ingest import _summary, ingest_files

    paths = section.get("paths") or ([section["path"]] if section.get("path") else [])
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise ConfigError("a files source needs paths = [\"...\"]")
    outcome = ingest_files(db, list(paths), quiet=bool(args.quiet))
    level = "summary" if outcome.exit_code == exitcodes.OK else "error"
    log.event("files_done", f"ingest files: {_summary(outcome)}", level=level, run_id=outcome.run_id,
              exit_code=outcome.exit_code)
    return outcome.exit_code


def _run_scim_source(section: dict, db: str, args: argparse.Namespace, log: RunLog) -> int:
    from ingest.scim.ingest import run_scim_source  # SCIM audit trail (issue 4; owner: SCIM ingest)

    return run_scim_source(section, db, args, log)


def _run_blobs_source(section: dict, db: str, args: argparse.Namespace, log: RunLog) -> int:
    from ingest.blobs.ingest import run_blobs_source  # Azure Storage blobs of diagnostic settings (issue 22)

    return run_blobs_source(section, db, args, log)


# type -> runner(section, db, args, log) -> exit code. Other sources (e.g. "scim") add an entry here.
SOURCE_TYPES: dict[str, SourceRunner] = {
    "graph": _run_graph_source,
    "files": _run_files_source,
    "scim": _run_scim_source,
    "blobs": _run_blobs_source,
}


def configured_sources(config: dict) -> list[dict]:
    sources = config.get("sources")
    if sources is None and isinstance(config.get("graph"), dict):
        sources = [{"type": "graph", **config["graph"]}]
    if not sources:
        raise ConfigError("no sources configured: add [[sources]] tables with type = "
                          f"{' | '.join(repr(t) for t in SOURCE_TYPES)} to provlens.toml (see README)")
    if not isinstance(sources, list) or not all(isinstance(s, dict) for s in sources):
        raise ConfigError("[[sources]] must be a list of tables")
    for s in sources:
        if s.get("type") not in SOURCE_TYPES:
            raise ConfigError(f"source type {s.get('type')!r}: one of {', '.join(SOURCE_TYPES)}")
    return sources


class RunLock:
    """An exclusive, non-blocking lock on a file (``filelock``); released when the process ends, even on SIGKILL.
    The holder writes its pid into the file (where the platform's lock lets others read it)."""

    def __init__(self, path: str):
        self.path = path
        # A native lock (flock / msvcrt) lends its descriptor to on_acquired; a soft lock (no native locking) does not.
        hook = {"on_acquired": self._write_pid} if getattr(filelock.FileLock, "_on_acquired_supported", False) else {}
        self._lock = filelock.FileLock(path, timeout=0, **hook)

    @staticmethod
    def _write_pid(fd: int) -> None:
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # the pid is only for the message of a second run

    def acquire(self) -> bool:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            return False
        return True

    def holder(self) -> str:
        try:
            with open(self.path) as fh:
                return fh.read().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)


def run_once(sources: list[dict], db: str, args: argparse.Namespace, log: RunLog) -> int:
    worst = exitcodes.OK
    for index, section in enumerate(sources, 1):
        kind = section["type"]
        log.info("source_start", source=kind, index=index, of=len(sources))
        try:
            code = SOURCE_TYPES[kind](section, db, args, log)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - one source failing must not stop the others
            if os.environ.get("PROVLENS_DEBUG"):
                raise
            from ingest.store import StoreError

            code = exitcodes.DATABASE if isinstance(exc, StoreError) else exitcodes.FAILED
            log.error("source_failed", f"source {index} ({kind}) failed: {type(exc).__name__}: {exc}",
                      source=kind, exit_code=code)
        if code != exitcodes.OK and worst == exitcodes.OK:
            worst = code
    return worst


def _write_through(args: argparse.Namespace, config: dict, code: int, log: RunLog) -> int:
    """After a round, the copy into the lake of --lake / [lake] (ingest/lake/writethrough.py), if any."""
    from ingest.lake.writethrough import write_through

    def say(line: str, is_error: bool) -> None:
        (log.error if is_error else log.summary)("lake_failed" if is_error else "lake_done", line)

    return write_through(args.db, args, config, code, say=say)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--every", help="run forever, starting a round every interval (e.g. 40m); default: once")
    p.add_argument("--lock", help="lock file (default: <db>.run.lock); a second run exits 0 while it is held")
    p.add_argument("--log-format", choices=("text", "json"), default=None,
                   help="text (default) or one JSON line per event on stderr")


def cmd_run(args: argparse.Namespace) -> int:
    from ingest.graph.command import parse_duration

    config = load_toml(args.config)
    sources = configured_sources(config)
    every = parse_duration(args.every).total_seconds() if args.every else None
    if every is not None and every < 1:
        raise ConfigError("--every must be at least 1s")
    log = RunLog(args.log_format or config.get("log_format") or "text")
    lock = RunLock(args.lock or f"{args.db}.run.lock")
    if not lock.acquire():
        log.summary("lock_busy", f"another provlens run holds {lock.path} (pid {lock.holder()}); "
                                 "nothing to do, exiting", lock=lock.path)
        return exitcodes.OK
    stop = {"now": False}

    def _terminate(signum, frame):  # SIGTERM (docker stop, systemd, Kubernetes): finish at a safe point
        stop["now"] = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        while True:
            started = time.monotonic()
            mark = metrics.runs_mark()
            log.info("round_start", at=datetime.now(timezone.utc), sources=len(sources))
            try:
                code = run_once(sources, args.db, args, log)
                code = _write_through(args, config, code, log)
            finally:
                if metrics.runs_mark() > mark:
                    from ingest.alerts.notify import evaluate_after_ingest

                    evaluate_after_ingest(args.db, config)  # with [alerts] in provlens.toml; never raises
                    metrics.publish(args, args.db, mark, "run")
            log.info("round_done", exit_code=code, seconds=round(time.monotonic() - started, 3))
            if every is None:
                return code
            pause = max(0.0, every - (time.monotonic() - started))
            log.info("sleeping", f"next round in {pause:.0f} s", seconds=round(pause, 1))
            time.sleep(pause)
    finally:
        signal.signal(signal.SIGTERM, previous)
        lock.release()
