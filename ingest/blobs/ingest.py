"""``python -m ingest blobs`` (and ``type = "blobs"`` in provlens.toml): load the diagnostic-settings blobs of
``insights-logs-provisioninglogs`` incrementally.

Each hour blob (``tenantId=<tenant>/y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json``, or the ``resourceId=/...`` form) is
read from where the last run stopped (:mod:`ingest.blobs.cursor`); its new complete lines go to a spool NDJSON file
that the file ingest reads (:func:`ingest.files.scan_file`, the same normalising as ``ingest files``), staged events
named by blob and line. A batch's events, its rejects and the read positions of the blobs it covers commit in one
transaction (``Store.load_blob_batch``), so a killed run re-reads at most one batch and loses nothing; records sent
twice (delivery is at least once) are one event, keyed on its id. The database is opened only for those commits.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field

import orjson

from ingest import exitcodes
from ingest.blobs.client import ACCOUNT_URL_ENV, CONTAINER, BlobSourceError, Container, Listed
from ingest.blobs.cursor import CHUNK, Piece, pieces, plan
from ingest.config import ConfigError, load_toml
from ingest.files import scan_file
from ingest.graph.log import RunLog
from ingest.loading import StagingFile, staged_source
from ingest.progress import progress
from ingest.store import LoadResult, Reject, Store

SOURCE = "blobs"
BATCH_EVENTS = 50_000
HOUR_BLOB = re.compile(r"(?:tenantId=[^/]+|resourceId=/.+)/y=\d{4}/m=\d{2}/d=\d{2}/h=\d{2}/m=\d{2}/PT1H\.json",
                       re.IGNORECASE)
# Keys that would put a secret in provlens.toml: refused, with where the value belongs instead.
_SECRET_KEYS = ("connection_string", "sas_url", "sas", "sas_token", "account_key", "key")


@dataclass
class BlobSettings:
    account_url: str | None = None
    container: str | None = None  # default CONTAINER (a container SAS names its own)
    prefix: str = ""
    retries: int = 3
    batch_events: int = BATCH_EVENTS
    quiet: bool = False


def settings_from(args: argparse.Namespace | None, section: dict) -> BlobSettings:
    """Flags > environment > the provlens.toml table (``[blobs]``, or a ``[[sources]]`` one) > defaults."""
    for key in section:
        if key.lower() in _SECRET_KEYS:
            raise ConfigError(f"provlens.toml: {key!r} is a secret and is never read from a file: set "
                              "PROVLENS_BLOB_CONNECTION_STRING or PROVLENS_BLOB_SAS_URL in the environment")

    def pick(name: str, env: str | None = None):
        value = getattr(args, name, None) if args is not None else None
        if value is None and env:
            value = os.environ.get(env) or None
        return value if value is not None else section.get(name)

    settings = BlobSettings(account_url=pick("account_url", ACCOUNT_URL_ENV), quiet=bool(getattr(args, "quiet", 0)))
    settings.container = pick("container") or None
    settings.prefix = pick("prefix") or ""
    for name in ("retries", "batch_events"):
        value = pick(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "retries" else 1):
                raise ConfigError(f"blobs: {name} must be a whole number ({'0' if name == 'retries' else '1'} or more)")
            setattr(settings, name, value)
    return settings


@dataclass
class BlobOutcome:
    container_url: str = ""
    auth: str = ""
    listed: int = 0  # hour blobs found
    others: list[str] = field(default_factory=list)  # other blobs under the prefix, not read
    unchanged: int = 0
    read: int = 0  # blobs with new bytes read this run
    restarted: list[str] = field(default_factory=list)  # "name: why" for blobs read again from the start
    held_back: int = 0  # blobs whose last line has no line end yet (read when it has one)
    changed_while_read: int = 0
    bytes: int = 0
    lines: int = 0
    batches: int = 0
    loaded: LoadResult = field(default_factory=LoadResult)
    rejected: int = 0
    run_id: int | None = None
    error: str | None = None
    error_code: int = exitcodes.OK

    @property
    def exit_code(self) -> int:
        if self.error:
            return exitcodes.PARTIAL if self.loaded.read else self.error_code
        if self.listed == 0:
            return exitcodes.FAILED
        if self.loaded.read - self.loaded.invalid == 0 and self.rejected:
            return exitcodes.FAILED
        return exitcodes.OK


def blob_position(position: str, first: int, last: int) -> str:
    """A position the file ingest gave in a spool file, as a line of the blob (the spool holds lines first-last)."""
    m = re.fullmatch(r"line (\d+)", position)
    if m:
        return f"line {first + int(m.group(1)) - 1}"
    if position == "document" and first == last:
        return f"line {first}"
    return f"lines {first}-{last}, {position}"


class _Relabelled:
    """A staging sink that names each staged event by its blob and line, not by the spool file (the staged line's
    ``pos``, ``ingest/loading.py``'s format), so the store's own rejects point into the blob too."""

    def __init__(self, staging: StagingFile, spool: str, label: str, first: int, last: int):
        self.staging, self.label, self.first, self.last = staging, label, first, last
        self.prefix = b'{"pos":' + orjson.dumps(spool)[:-1] + b"#"

    def write(self, line: bytes, count: int | None = None, *, page: bool = False) -> None:
        if line.startswith(self.prefix):
            end = line.find(b'","raw":', len(self.prefix))
            if end > 0:
                position = blob_position(line[len(self.prefix):end].decode("utf-8", "replace"), self.first, self.last)
                line = b'{"pos":' + orjson.dumps(f"{self.label}#{position}") + line[end + 1:]
        self.staging.write(line, count, page=page)


class _Batch:
    """Staged events, rejects and the blobs' read positions, committed together."""

    def __init__(self) -> None:
        self.staging = StagingFile()
        self.states: dict[str, dict] = {}
        self.rejects: list[Reject] = []
        self.pieces = 0

    def add(self, piece: Piece, label: str, outcome: BlobOutcome) -> None:
        if piece.data:
            last = piece.first_line + piece.data.count(b"\n") - 1
            fd, spool = tempfile.mkstemp(prefix="provlens-blob-", suffix=".ndjson")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(piece.data)
                # the file ingest reads the records as the blob holds them (ingest/shapes.py unwraps them)
                scan = scan_file(spool, _Relabelled(self.staging, spool, label, piece.first_line, last))
            finally:
                os.unlink(spool)
            self.rejects += [Reject(label, blob_position(r.position, piece.first_line, last), r.reason, r.excerpt)
                             for r in scan.rejects]
            if scan.fatal and not scan.rejects and scan.fatal != "file is empty":
                self.rejects.append(Reject(label, blob_position("document", piece.first_line, last), scan.fatal,
                                           piece.data[:200].decode("utf-8", "replace")))
            outcome.bytes += len(piece.data)
            outcome.lines += last - piece.first_line + 1
        for line, size in piece.too_long:
            self.rejects.append(Reject(label, f"line {line}", f"line of {size} bytes, longer than the "
                                                              f"{CHUNK // (1 << 20)} MiB a record may be; skipped"))
        self.states[piece.state["blob"]] = piece.state
        self.pieces += 1

    @property
    def events(self) -> int:
        return self.staging.count

    def commit(self, db_path: str, run_id: int, container: Container, outcome: BlobOutcome, log: RunLog) -> None:
        if not (self.states or self.rejects):
            return
        source = staged_source(self.staging)
        with Store.open(db_path) as store:
            result = store.load_blob_batch(*(source or (None, None)), run_id=run_id, source=SOURCE,
                                           container_url=container.url, states=list(self.states.values()),
                                           rejects=self.rejects, run_counters={"pages": self.pieces})
        for name in ("read", "new", "updated", "invalid"):
            setattr(outcome.loaded, name, getattr(outcome.loaded, name) + getattr(result, name))
        outcome.rejected += len(self.rejects) + result.invalid
        outcome.batches += 1
        log.info("blob_batch_committed", blobs=len(self.states), events=result.read, new=result.new,
                 rejected=len(self.rejects) + result.invalid, run_id=run_id)
        self.discard()
        self.__init__()

    def discard(self) -> None:
        self.staging.discard()


def ingest_blobs(db_path: str, settings: BlobSettings, log: RunLog | None = None) -> BlobOutcome:
    """Read every hour blob's new complete lines and load them, one transaction per batch."""
    log = log or RunLog("text")
    container = Container(settings.container, settings.account_url, retries=settings.retries)
    outcome = BlobOutcome(container_url=container.url, auth=container.auth)
    with Store.open(db_path) as store:
        run_id = store.start_run(SOURCE, scope=container.url)
        states = store.blob_states(container.url)
    outcome.run_id = run_id
    log.info("blobs_start", container=container.url, prefix=settings.prefix, auth=container.auth, run_id=run_id)
    batch = _Batch()
    try:
        try:
            hour_blobs: list[Listed] = []
            for blob in container.list(settings.prefix):
                (hour_blobs.append(blob) if HOUR_BLOB.fullmatch(blob.name) else outcome.others.append(blob.name))
            outcome.listed = len(hour_blobs)
            for blob in progress(sorted(hour_blobs, key=lambda b: b.name), desc="reading blobs", unit="blob",
                                 disable=settings.quiet):
                _read_blob(blob, states.get(blob.name), container, batch, outcome, db_path, run_id, settings, log)
        except BlobSourceError as exc:  # what was read so far is consistent with its positions: keep it
            outcome.error, outcome.error_code = str(exc), exc.exit_code
        batch.commit(db_path, run_id, container, outcome, log)
    finally:
        batch.discard()
    result = "failed" if outcome.error and not outcome.loaded.read else (
        "partial" if outcome.error or outcome.rejected else "success")
    with Store.open(db_path) as store:
        store.finish_run(run_id, result, message=(outcome.error + "; " if outcome.error else "") + summary(outcome))
    return outcome


def _read_blob(blob: Listed, state: dict | None, container: Container, batch: _Batch, outcome: BlobOutcome,
               db_path: str, run_id: int, settings: BlobSettings, log: RunLog) -> None:
    decision = plan(blob, state)
    if decision.action == "unchanged":
        outcome.unchanged += 1
        outcome.held_back += state["byte_offset"] < blob.size
        return
    if decision.action == "restart":
        outcome.restarted.append(f"{blob.name}: {decision.reason}")
    outcome.read += 1
    label = f"{container.url}/{blob.name}"
    last = None
    for piece in pieces(blob, state, container.read):
        if isinstance(piece, str):
            outcome.restarted.append(f"{blob.name}: {piece}")
            continue
        batch.add(piece, label, outcome)
        last = piece.state
        if batch.events >= settings.batch_events:
            batch.commit(db_path, run_id, container, outcome, log)
    if last is None:
        outcome.changed_while_read += 1
        log.warning("blob_changed", f"{blob.name} changed while it was read; the next run reads it again",
                    blob=blob.name)
    elif last["byte_offset"] < blob.size:
        outcome.held_back += 1


def summary(outcome: BlobOutcome) -> str:
    r = outcome.loaded
    text = (f"{outcome.listed} blob(s) ({outcome.read} read, {outcome.unchanged} unchanged, "
            f"{len(outcome.restarted)} read again from the start), {outcome.lines} new line(s), "
            f"{outcome.bytes:,} bytes: {r.read - r.invalid} event(s) loaded ({r.new} new, {r.updated} updated, "
            f"{r.unchanged} already loaded), {outcome.rejected} rejected")
    if outcome.held_back:
        text += f", {outcome.held_back} unfinished last line(s) left for the next run"
    if outcome.changed_while_read:
        text += f", {outcome.changed_while_read} blob(s) changed while read (read again next run)"
    return text


def print_report(outcome: BlobOutcome, db_path: str, stream=None) -> None:
    stream = stream or sys.stderr
    if outcome.error and not (outcome.listed or outcome.others):  # nothing was listed: the error says it all
        print(f"error: ingest blobs: {outcome.error}", file=stream)
        return
    print(f"ingest blobs: {outcome.container_url} ({outcome.auth}): {summary(outcome)} -> {db_path}", file=stream)
    for line in outcome.restarted[:10]:
        print(f"  read again from the start: {line}", file=stream)
    if outcome.others:
        shown = ", ".join(outcome.others[:3]) + (", ..." if len(outcome.others) > 3 else "")
        print(f"  {len(outcome.others)} other blob(s) are not diagnostic-settings hour blobs (.../y=YYYY/m=MM/d=DD/"
              f"h=HH/m=00/PT1H.json) and were not read: {shown}", file=stream)
    if outcome.error:
        print(f"error: {outcome.error}", file=stream)
        if outcome.loaded.read:
            print("  what was read before it is kept; run again to finish", file=stream)
    elif outcome.listed == 0:
        print("error: no diagnostic-settings hour blobs found: check the account, the container and --prefix "
              "(e.g. tenantId=<tenant id>/), and that a diagnostic setting sends ProvisioningLogs to this storage "
              "account (its first blob appears after the first records, which can take hours)", file=stream)
    if outcome.rejected:
        print(f"warning: {outcome.rejected} record(s) rejected; see them with "
              f"`python -m queries export ingest-rejects --out rejects.csv` (run {outcome.run_id})", file=stream)


# ---------------------------------------------------------------------------- command line and `ingest run`
def add_blob_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Azure Storage (diagnostic settings)")
    g.add_argument("--account-url", help="https://<account>.blob.core.windows.net, signed in with azure-identity's "
                                         f"DefaultAzureCredential (env {ACCOUNT_URL_ENV}); or set "
                                         "PROVLENS_BLOB_CONNECTION_STRING or PROVLENS_BLOB_SAS_URL in the environment")
    g.add_argument("--container", help=f"container (default {CONTAINER})")
    g.add_argument("--prefix", help="read only blobs whose name starts with this, e.g. tenantId=<tenant id>/")
    g.add_argument("--batch-events", type=int, help=f"commit every this many events (default {BATCH_EVENTS:,})")
    g.add_argument("--retries", type=int, help="retries of a failing storage request (default 3)")
    g.add_argument("--log-format", choices=("text", "json"), default=None,
                   help="text (default) or one JSON line per event on stderr")


def run_blobs(db_path: str, settings: BlobSettings, log: RunLog) -> tuple[BlobOutcome | None, int]:
    try:
        outcome = ingest_blobs(db_path, settings, log)
    except BlobSourceError as exc:  # before any blob was listed (the run was not started)
        log.error("blobs_failed", str(exc))
        return None, exc.exit_code
    return outcome, outcome.exit_code


def cmd_blobs(args: argparse.Namespace) -> int:
    config = load_toml(args.config)
    settings = settings_from(args, config.get("blobs") or {})
    log = RunLog(args.log_format or config.get("log_format") or "text")
    outcome, code = run_blobs(args.db, settings, log)
    if outcome is not None:
        print_report(outcome, args.db)
    return code


def run_blobs_source(section: dict, db: str, args: argparse.Namespace, log: RunLog) -> int:
    """``python -m ingest run`` runner for a ``[[sources]]`` table with ``type = "blobs"``::

        [[sources]]
        type = "blobs"
        account_url = "https://<account>.blob.core.windows.net"   # or PROVLENS_BLOB_* in the environment
        prefix = "tenantId=<tenant id>/"                            # optional
    """
    settings = settings_from(None, {k: v for k, v in section.items() if k != "type"})
    settings.quiet = bool(getattr(args, "quiet", False))
    outcome, code = run_blobs(db, settings, log)
    if outcome is not None:
        level = "summary" if code == exitcodes.OK else "error"
        message = f"ingest blobs: {summary(outcome)}" + (f"; {outcome.error}" if outcome.error else "")
        log.event("blobs_done", message, level=level, run_id=outcome.run_id, exit_code=code)
    return code
