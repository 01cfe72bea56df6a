"""Pull provisioning events for one or more service principals: time slices, watermarks, loads.

For each scope (tenant, service principal) the window runs from the watermark minus the overlap (or
``--since``; first run: 30 days back) to ``--until`` (default: now). It is cut into time slices; each slice
is fetched completely over the network first (pages staged to temporary NDJSON files, no database lock
held), then loaded by the store in one transaction together with the scope's watermark = the end of the
last complete slice. Slices that arrive quickly are committed together (a commit when ``commit_events``
events are waiting or the oldest waiting slice is ``commit_seconds`` old), so a fast backfill does not pay
a transaction per day while a slow one (Graph's throttle) still commits every slice promptly.
A kill at any moment therefore loses nothing, and the next run resumes after the last committed slice.
Big slices commit their rows every ``commit_events`` events as well (without moving the watermark).
While the loader is busy, fetching goes on and the next commit takes everything fetched meanwhile (up to
``4 x commit_events``), so a fast backfill makes few, large commits. Commits that follow each other quickly
leave the derived refresh to the run's last commit (at most ``derived_seconds`` apart; a kill leaves it to
the next load, see ``Store.refresh_pending_derived``), and batches past the store's newest event skip the
key scan (``likely_new``; a known id still takes the usual path).

Each slice asks Graph for ``servicePrincipal/id eq '…' and activityDateTime gt S-1s and activityDateTime
lt E`` (whole-second bounds: safe even for servers comparing strings) and keeps, client-side, only events
of that service principal with S <= activityDateTime < E, so every event lands in exactly one slice and
events of other service principals never land (they are counted in the run message).

What is pulled is a *feed* (:class:`ProvisioningFeed`, :class:`DirectoryAuditFeed`): its requests, its client-side
filter and the table it loads into. The slicing, paging, pacing, watermark and commit rules above are
:class:`ScopePull`'s, the same for every feed. The directory audit log (issue 24) is pulled once per run before the
provisioning scopes (``--no-audit-logs`` skips it): its own source ``graph-audit`` and watermark.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import simdjson

from ingest import exitcodes
from ingest.audit_sql import PROVISIONING_SERVICE
from ingest.graph.auth import AuthSettings, build_auth_provider
from ingest.graph.client import (
    GraphAuthError,
    GraphBadRequest,
    GraphError,
    GraphNotFound,
    GraphSession,
    GraphUnavailable,
)
from ingest.graph.jobs import fetch_job_snapshots
from ingest.graph.log import RunLog
from ingest.graph.pacing import Pacer, RetryPolicy
from ingest.loading import PAGE_LINE_MAX, StagingFile, load_staged
from ingest.progress import progress
from ingest.store import LoadResult, Store

SOURCE = "graph"
AUDIT_SOURCE = "graph-audit"
MAX_RESTARTS = 2  # a slice whose $skiptoken was rejected is fetched again from its first page
# Graph may answer an empty page that still has a nextLink (followed: the next one holds events), but a server
# that keeps doing so was followed for 100,035 pages (issue 27). At most this many empty pages in a row are
# followed per slice, and the time they take counts against --max-wait like a retry wait; then the run stops
# (exit 5 UNREACHABLE, or 3 PARTIAL once slices were committed; those stay).
MAX_EMPTY_PAGES = 100
TOP_FALLBACKS = (999, 500, 100)


@dataclass
class PullSettings:
    db: str
    base_url: str
    auth: AuthSettings
    service_principal_ids: list[str] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    overlap: timedelta = timedelta(hours=2)
    first_window: timedelta = timedelta(days=30)
    slice_length: timedelta = timedelta(days=1)
    rate: tuple[int, float] | None = (5, 10.0)
    top: int = 999
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 60.0
    jobs: bool = True
    audit_logs: bool = True  # also pull the provisioning service's directory audit log (issue 24)
    quiet: bool = False
    commit_events: int = 50_000  # commit once this many events wait (mid-slice too, without the watermark)
    commit_seconds: float = 5.0  # ... or once the oldest complete, uncommitted slice is this old (0: every slice)
    derived_seconds: float = 60.0  # refresh the derived tables at least this often during a run (and at its end)
    credential: Any = None  # an azure-identity credential object (overrides --auth; used by tests)


@dataclass
class ScopeOutcome:
    scope: str
    service_principal_id: str | None
    window_start: datetime
    window_end: datetime
    run_id: int | None = None
    slices: int = 0
    slices_done: int = 0
    pages: int = 0
    loaded: LoadResult = field(default_factory=LoadResult)
    other_sp_dropped: int = 0
    job_snapshots: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    exit_code: int = exitcodes.OK
    source: str = SOURCE
    unit: str = "event(s)"
    other_label: str = "event(s) of other service principals"

    @property
    def outcome(self) -> str:
        if self.exit_code == exitcodes.OK:
            return "success"
        return "partial" if self.slices_done else "failed"

    def summary(self) -> str:
        r = self.loaded
        text = (f"{self.source} {self.scope}: {self.window_start:%Y-%m-%d %H:%M} .. {self.window_end:%Y-%m-%d %H:%M} "
                f"UTC, {self.slices_done}/{self.slices} slice(s), {self.pages} page(s), {r.read - r.invalid} "
                f"{self.unit} ({r.new} new, {r.updated} updated, {r.unchanged} unchanged, {r.invalid} rejected)")
        if self.other_sp_dropped:
            text += f", {self.other_sp_dropped} {self.other_label} ignored"
        if self.job_snapshots:
            text += f", {self.job_snapshots} job snapshot(s)"
        return text


@dataclass
class GraphOutcome:
    scopes: list[ScopeOutcome] = field(default_factory=list)  # the provisioning scopes, in order
    audit: ScopeOutcome | None = None  # the directory audit log's scope (pulled first), if pulled
    requests: int = 0
    retries: int = 0
    throttled: int = 0

    @property
    def exit_code(self) -> int:
        codes = [s.exit_code for s in [*self.scopes, *([self.audit] if self.audit else [])]
                 if s.exit_code != exitcodes.OK]
        return codes[0] if codes else exitcodes.OK


def odata_time(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def odata_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def plan_slices(start: datetime, end: datetime, length: timedelta) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at multiples of ``length`` (UTC-aligned, so re-runs share boundaries)."""
    if end <= start:
        return []
    epoch = datetime(2000, 1, 1, tzinfo=timezone.utc)
    slices = []
    s = start
    while s < end:
        k = (s - epoch) // length + 1
        e = min(end, epoch + k * length)
        slices.append((s, e))
        s = e
    return slices


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _event_sp(event: dict | simdjson.Object) -> str | None:
    sp = event.get("servicePrincipal")
    if isinstance(sp, (list, simdjson.Array)):
        sp = sp[0] if len(sp) else None
    if isinstance(sp, (dict, simdjson.Object)):
        ident = sp.get("id")
        return ident if isinstance(ident, str) else None
    return None


def _sum(a: dict, b: dict) -> dict:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}


def _add(total: LoadResult, part: LoadResult) -> None:
    total.read += part.read
    total.new += part.new
    total.updated += part.updated
    total.invalid += part.invalid


def _audit_sp(entry: dict | simdjson.Object) -> str | None:
    """The service principal a directory audit entry targets (``targetResources[].type`` ServicePrincipal, either
    casing of the key), or None."""
    targets = entry.get("targetResources")
    if not isinstance(targets, (list, simdjson.Array)):
        return None
    for t in targets:
        if isinstance(t, (dict, simdjson.Object)):
            kind = t.get("type") or t.get("Type")
            ident = t.get("id")
            if isinstance(kind, str) and kind.lower() == "serviceprincipal" and isinstance(ident, str):
                return ident
    return None


class ProvisioningFeed:
    """``/auditLogs/provisioning`` for one service principal (or every one): the events table."""

    source, into, unit, jobs = SOURCE, "events", "event(s)", True
    other_label = "event(s) of other service principals"

    def __init__(self, session: GraphSession, settings: PullSettings, log: RunLog, sp: str | None, query_style: dict):
        self.session, self.settings, self.log, self.sp = session, settings, log, sp
        self.query = query_style  # shared across scopes: {"top": int, "sp_filter": "eq"|"contains"}
        self.want = sp.lower() if sp else None
        self.sps_seen: set[str] = set()
        self.label = f"graph {sp or 'all'}"

    def scope(self, tenant: str) -> str:
        return f"{tenant}/{self.sp or '*'}"

    def what(self, s: datetime, e: datetime) -> str:
        return f"provisioning logs {odata_time(s)}..{odata_time(e)}"

    def newest(self, store: Store) -> datetime | None:
        return store.con.execute("SELECT max(activity_time) FROM events").fetchone()[0]

    def first_request(self, s: datetime, e: datetime):
        parts = []
        if self.sp:
            if self.query["sp_filter"] == "eq":
                parts.append(f"servicePrincipal/id eq {odata_string(self.sp)}")
            else:
                parts.append(f"contains(tolower(servicePrincipal/id),{odata_string(self.sp.lower())})")
        parts.append(f"activityDateTime gt {odata_time(s - timedelta(seconds=1))}")
        parts.append(f"activityDateTime lt {odata_time(e)}")
        return self.session.provisioning_request(filter=" and ".join(parts), top=self.query["top"])

    def next_request(self, next_link: str):
        return self.session.next_request(next_link)

    def fallback(self, exc: GraphBadRequest) -> bool:
        """After a 400 on a slice's first page: try a smaller $top, then the documented SP filter form."""
        if _smaller_top(self.query, exc, self.log):
            return True
        if self.sp and self.query["sp_filter"] == "eq":
            self.query["sp_filter"] = "contains"
            self.query["top"] = self.settings.top
            self.log.warning("filter_fallback", f"Graph rejected the servicePrincipal/id eq filter ({exc}); "
                             "using contains(tolower(servicePrincipal/id), ...) and checking each event")
            return True
        return False

    def wanted(self, event: dict | simdjson.Object) -> bool:
        """False for an event of another service principal (counted, not staged)."""
        sp = _event_sp(event)
        if self.want is not None and sp is not None and sp.lower() != self.want:
            return False
        if sp is not None and self.want is None:
            self.sps_seen.add(sp)
        return True


class DirectoryAuditFeed:
    """``/auditLogs/directoryAudits`` filtered to the provisioning service (issue 24): the directory_audits table.

    The filter is ``loggedByService eq 'Account Provisioning' and activityDateTime ge S-1s and activityDateTime le
    E``: Graph documents ``eq`` for loggedByService and only ``eq``/``ge``/``le`` for activityDateTime on this API
    (graph docs ``directoryaudit.md``), and whole-second bounds a second wide are safe for servers comparing
    strings. A server that rejects the service filter gets the time filter alone (and, as always, each entry is
    checked client-side: the service, the slice's [S, E), and with ``--service-principal-id`` the app it targets
    where the entry names one)."""

    source, into, unit, jobs = AUDIT_SOURCE, "directory_audits", "audit entries", False
    other_label = "audit entries of other services or apps"

    def __init__(self, session: GraphSession, settings: PullSettings, log: RunLog, sps: list[str]):
        self.session, self.settings, self.log = session, settings, log
        self.sps = sorted({sp.lower() for sp in sps})
        self.query = {"top": settings.top, "service_filter": True}
        self.label = "graph audit log"
        self.sps_seen: set[str] = set()

    def scope(self, tenant: str) -> str:
        return f"{tenant}/" + (",".join(self.sps) or "*")

    def what(self, s: datetime, e: datetime) -> str:
        return f"directory audit log {odata_time(s)}..{odata_time(e)}"

    def newest(self, store: Store) -> datetime | None:
        return None

    def first_request(self, s: datetime, e: datetime):
        parts = [f"loggedByService eq {odata_string(PROVISIONING_SERVICE)}"] if self.query["service_filter"] else []
        parts.append(f"activityDateTime ge {odata_time(s - timedelta(seconds=1))}")
        parts.append(f"activityDateTime le {odata_time(e)}")
        return self.session.directory_audits_request(filter=" and ".join(parts), top=self.query["top"])

    def next_request(self, next_link: str):
        return self.session.directory_audits_next_request(next_link)

    def fallback(self, exc: GraphBadRequest) -> bool:
        if _smaller_top(self.query, exc, self.log):
            return True
        if self.query["service_filter"]:
            self.query["service_filter"] = False
            self.query["top"] = self.settings.top
            self.log.warning("filter_fallback", f"Graph rejected the loggedByService filter ({exc}); pulling by "
                             "time only and keeping the Account Provisioning entries client-side")
            return True
        return False

    def wanted(self, entry: dict | simdjson.Object) -> bool:
        service = entry.get("loggedByService")
        if not isinstance(service, str) or service.strip().lower() != PROVISIONING_SERVICE.lower():
            return False
        sp = _audit_sp(entry)
        return not (self.sps and sp is not None and sp.lower() not in self.sps)


def _smaller_top(query: dict, exc: GraphBadRequest, log: RunLog) -> bool:
    top = query["top"]
    smaller = [t for t in TOP_FALLBACKS if t < top]
    if smaller:
        query["top"] = smaller[0]
        log.warning("top_fallback", f"Graph rejected $top={top} ({exc}); using $top={smaller[0]}")
        return True
    return False


class ScopePull:
    """Pull one scope of a feed (a tenant's service principal, or its directory audit log) slice by slice."""

    def __init__(self, session: GraphSession, settings: PullSettings, log: RunLog, tenant: str, sp: str | None = None,
                 query_style: dict | None = None, *, feed: ProvisioningFeed | DirectoryAuditFeed | None = None):
        self.session = session
        self.settings = settings
        self.log = log
        self.feed = feed or ProvisioningFeed(session, settings, log, sp, query_style or {"top": settings.top,
                                                                                         "sp_filter": "eq"})
        self.sp = sp
        self.scope = self.feed.scope(tenant)
        self.out: ScopeOutcome | None = None
        # complete slices fetched but not yet committed: their staging files, counters and the last end
        self._pending: list[StagingFile] = []
        self._pending_counters = {"pages": 0, "read": 0, "other_sp": 0}
        self._pending_end: datetime | None = None
        self._pending_since: float | None = None
        self._pending_start: datetime | None = None  # the earliest slice start of what waits
        self._newest_at_start: datetime | None = None  # the store's newest event when the run began
        self._deferred = False  # a commit left its derived refresh for later
        self._last_refresh = time.monotonic()
        # commits run in one loader thread, in order, one at a time, while the next slices are fetched
        self._loader: ThreadPoolExecutor | None = None
        self._loading: Future | None = None

    # ------------------------------------------------------------------ the run
    async def run(self) -> ScopeOutcome:
        settings = self.settings
        until = (settings.until or datetime.now(timezone.utc)).replace(microsecond=0)
        stats0 = (self.session.stats.retries, self.session.stats.throttled)
        feed = self.feed
        with Store.open(settings.db) as store:
            mark = store.get_watermark(feed.source, self.scope)
            if settings.since is not None:
                start = settings.since
            elif mark is not None:
                start = mark - settings.overlap
            else:
                start = until - settings.first_window
            start = start.replace(microsecond=0)
            run_id = store.start_run(feed.source, self.scope, start, until)
            store.refresh_pending_derived()  # a killed run's deferred refresh
            self._newest_at_start = feed.newest(store)
        out = self.out = ScopeOutcome(self.scope, self.sp, start, until, run_id=run_id, source=feed.source,
                                      unit=feed.unit, other_label=feed.other_label)
        slices = plan_slices(start, until, settings.slice_length)
        out.slices = len(slices)
        self.log.info("scope_start", f"{feed.source} {self.scope}: {len(slices)} slice(s) from {odata_time(start)} "
                      f"to {odata_time(until)}", scope=self.scope, run_id=run_id, window_start=start,
                      window_end=until, watermark=mark, slices=len(slices))
        bar = progress(slices, desc=feed.label[:32], unit="slice",
                       disable=settings.quiet or self.log.is_json)
        try:
            try:
                for s, e in bar:
                    await self._slice(s, e)
                    out.slices_done += 1
                    if hasattr(bar, "set_postfix"):
                        bar.set_postfix(events=out.loaded.read, pages=out.pages)
            finally:
                await self._finish_loading()
        except GraphAuthError as exc:
            out.error, out.exit_code = str(exc), exitcodes.AUTH
        except GraphUnavailable as exc:
            out.error = str(exc)
            out.exit_code = exitcodes.PARTIAL if out.slices_done else exitcodes.UNREACHABLE
        except GraphNotFound as exc:
            out.error, out.exit_code = str(exc), exitcodes.USAGE
        except GraphError as exc:
            out.error = str(exc)
            out.exit_code = exitcodes.PARTIAL if out.slices_done else exitcodes.FAILED
        finally:
            if hasattr(bar, "close"):
                bar.close()
        snapshots: list[dict] = []
        if settings.jobs and feed.jobs and out.exit_code not in (exitcodes.AUTH, exitcodes.UNREACHABLE):
            snapshots = await self._jobs()
        with Store.open(settings.db) as store:
            if snapshots:
                out.job_snapshots = store.load_job_snapshots(snapshots)
            message = out.summary() + "".join(f"; warning: {w}" for w in out.warnings)
            if out.error:
                message += f"; error: {out.error}"
            store.finish_run(run_id, out.outcome, message,
                             retries=self.session.stats.retries - stats0[0],
                             throttled=self.session.stats.throttled - stats0[1])
        return out

    async def _jobs(self) -> list[dict]:
        targets = [self.sp] if self.sp else sorted(self.feed.sps_seen)
        snapshots: list[dict] = []
        for sp in targets:
            try:
                snapshots.extend(await fetch_job_snapshots(self.session, sp))
            except GraphError as exc:
                hint = " (reading job status needs Synchronization.Read.All or Directory.Read.All)" \
                    if isinstance(exc, GraphAuthError) else ""
                warning = f"job status of {sp} not read: {exc}{hint}"
                self.out.warnings.append(warning)
                self.log.warning("jobs_failed", warning, scope=self.scope)
        return snapshots

    # ------------------------------------------------------------------ one slice
    async def _slice(self, s: datetime, e: datetime) -> None:
        staging = StagingFile()
        counters = {"pages": 0, "read": 0, "other_sp": 0}
        handed_over = False
        restarts = 0
        feed = self.feed
        what = feed.what(s, e)
        try:
            request = feed.first_request(s, e)
            page_no = 0
            empty_run = 0  # empty pages with a nextLink in a row
            while True:
                doc = value = None  # the previous page's document is released: its parser is reused
                asked = time.monotonic()
                try:
                    doc, body = await self.session.get_json(request, what, lazy=True, with_body=True)
                except GraphBadRequest as exc:
                    if page_no == 0 and feed.fallback(exc):
                        request = feed.first_request(s, e)
                        continue
                    if page_no > 0 and restarts < MAX_RESTARTS:  # an expired or rejected $skiptoken
                        restarts += 1
                        self.log.warning("slice_restart", f"{what}: page {page_no + 1} rejected ({exc}); "
                                         "fetching the slice again from its first page")
                        staging.discard()
                        staging = StagingFile()
                        counters = {"pages": 0, "read": 0, "other_sp": 0}
                        page_no = 0
                        request = feed.first_request(s, e)
                        continue
                    raise
                page_no += 1
                counters["pages"] += 1
                value = doc.get("value")
                if not isinstance(value, (list, simdjson.Array)):
                    raise GraphError(f"{what}: page {page_no} has no \"value\" array "
                                     f"(keys: {', '.join(list(doc)[:5])})")
                self._stage(value, staging, s, e, page_no, counters, body, own_pos="pos" in doc)
                next_link = doc.get("@odata.nextLink")
                if not next_link:
                    break
                if not isinstance(next_link, str):
                    raise GraphError(f"{what}: page {page_no} has a non-text @odata.nextLink")
                empty_run = empty_run + 1 if len(value) == 0 else 0
                if empty_run:
                    self._empty_page(what, empty_run, time.monotonic() - asked)
                if self._hand_over_now(staging.count + self._pending_count(), big=True):
                    # rows are safe now; the watermark moves to the last complete slice, this one's end waits
                    files, end = [*self._pending, staging], self._pending_end
                    both = _sum(self._pending_counters, counters)
                    first = self._pending_start or s
                    self._clear_pending()
                    counters = {"pages": 0, "read": 0, "other_sp": 0}
                    staging = StagingFile()
                    self._commit(files, end, both, first)
                request = feed.next_request(next_link)
            handed_over = True
            self._complete_slice(staging, s, e, counters)
        finally:
            if not handed_over:
                staging.discard()

    def _empty_page(self, what: str, in_a_row: int, seconds: float) -> None:
        """An empty page with a nextLink: its time counts against --max-wait; stop at MAX_EMPTY_PAGES in a row."""
        stats, max_wait = self.session.stats, self.settings.policy.max_wait
        stats.waited += seconds
        if in_a_row >= MAX_EMPTY_PAGES:
            raise GraphUnavailable(f"{what}: {in_a_row} empty pages in a row, each with an @odata.nextLink; stopped "
                                   f"following them (at most {MAX_EMPTY_PAGES} per slice). Graph is not returning "
                                   "this slice's events; committed slices are kept, re-run later")
        if stats.waited > max_wait:
            raise GraphUnavailable(f"{what}: {in_a_row} empty pages in a row, each with an @odata.nextLink, used up "
                                   f"the wait budget (--max-wait {max_wait:g} s, {stats.waited:.1f} s spent); "
                                   "committed slices are kept, re-run later")

    def _stage(self, value: list, staging: StagingFile, s: datetime, e: datetime, page_no: int,
               counters: dict, body: bytes = b"", *, own_pos: bool = True) -> None:
        """Stage the page's events of this scope and slice: the body as it came when every event is kept
        (and it has no top-level "pos" of its own, ``own_pos``), else event by event. The feed says which
        events are its own (``feed.wanted``: another service principal's are counted in ``other_sp``)."""
        label = orjson.dumps(f"graph {self.scope} {odata_time(s)} page {page_no}")[:-1]
        kept: list = []  # (index, event)
        whole = isinstance(value, simdjson.Array)  # every event kept and a simdjson object: stage the page whole
        for i, event in enumerate(value):
            if isinstance(event, (dict, simdjson.Object)):
                t = _parse_time(event.get("activityDateTime"))
                if t is not None and not (s <= t < e):
                    whole = False
                    continue  # the neighbouring slice owns it
                if not self.feed.wanted(event):
                    counters["other_sp"] += 1
                    whole = False
                    continue
            else:
                whole = False
            kept.append((i, event))
        # every event kept: the body itself, if it is one compact object without a "pos" of its own (a key
        # test on the parsed page, not a search of its ~3 MB; and no copy of the body: B1)
        if whole and kept and not own_pos and body[:1] == b"{" and len(body) <= PAGE_LINE_MAX \
                and b"\n" not in body:
            counters["read"] += len(kept)
            staging.write_parts((b'{"pos":' + label + b'",', memoryview(body)[1:], b"\n"), len(kept), page=True)
            return
        lines = []
        for i, event in kept:
            raw = event.mini if isinstance(event, (simdjson.Object, simdjson.Array)) else orjson.dumps(event)
            lines.append(b'{"pos":' + label + b"#value[" + str(i).encode() + b']","raw":' + raw + b"}\n")
            counters["read"] += 1
        if lines:
            staging.write(b"".join(lines), len(lines))

    def _pending_count(self) -> int:
        return sum(f.count for f in self._pending)

    def _clear_pending(self) -> None:
        self._pending, self._pending_end, self._pending_since, self._pending_start = [], None, None, None
        self._pending_counters = {"pages": 0, "read": 0, "other_sp": 0}

    def _loader_busy(self) -> bool:
        return self._loading is not None and not self._loading.done()

    def _hand_over_now(self, waiting: int, *, big: bool) -> bool:
        """Commit what waits now? When it is big (or old) enough and the loader is free; while the loader is
        busy, fetching goes on until ``4 x commit_events`` wait (then the fetch waits for the loader)."""
        limit, busy = self.settings.commit_events, self._loader_busy()
        if big:
            return waiting >= limit * (4 if busy else 1)
        return not busy or waiting >= limit * 4 or self.settings.commit_seconds == 0  # 0: every slice

    def _complete_slice(self, staging: StagingFile, slice_start: datetime, slice_end: datetime,
                        counters: dict) -> None:
        """A slice is fully fetched: queue it, and commit the queue when it is big or old enough. Empty
        slices open no database on their own: their watermark rides along with the next commit."""
        staging.close()
        if staging.count:
            self._pending.append(staging)
        else:
            staging.discard()
        self._pending_counters = _sum(self._pending_counters, counters)
        self._pending_end = slice_end
        if self._pending_start is None:
            self._pending_start = slice_start
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        waiting = self._pending_count()
        if waiting >= self.settings.commit_events:
            if self._hand_over_now(waiting, big=True):
                self._flush()
        elif time.monotonic() - self._pending_since >= self.settings.commit_seconds and \
                self._hand_over_now(waiting, big=False):
            self._flush()

    def _flush(self, *, last: bool = False) -> bool:
        """Commit every complete slice still waiting (also after an error: they are complete and good)."""
        if self._pending_end is None:
            return False
        files, end, counters, first = self._pending, self._pending_end, self._pending_counters, self._pending_start
        self._clear_pending()
        self._commit(files, end, counters, first, last=last)
        return True

    async def _finish_loading(self) -> None:
        """Commit what is complete and wait for the loader; called on success and on errors alike. The
        last commit refreshes the derived tables for the run's deferred commits too."""
        try:
            flushed = self._flush(last=True)
        finally:
            self._wait_for_loader()
            if self._loader is not None:
                self._loader.shutdown()
                self._loader = None
        if self._deferred and not flushed:  # the loader is done: this thread may open the store
            with Store.open(self.settings.db) as store:
                store.refresh_pending_derived()
            self._deferred = False

    def _wait_for_loader(self) -> None:
        loading, self._loading = self._loading, None
        if loading is not None:
            loading.result()  # re-raises the loader's error (a store error) here, in order

    def _commit(self, files: list[StagingFile], slice_end: datetime | None, counters: dict,
                first_start: datetime | None = None, *, last: bool = False) -> None:
        """Hand a commit to the loader thread once the previous one is done (commits stay in order and at
        most one batch waits in memory/on disk besides the one being fetched). Only the loader opens the
        store while a scope is being pulled, so no two connections to the file ever exist in this process."""
        try:
            self._wait_for_loader()
        except BaseException:
            for f in files:
                f.discard()
            raise
        if self._loader is None:
            self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="provlens-loader")
        newest = self._newest_at_start
        likely_new = newest is None or (first_start is not None and first_start > newest)
        defer = not last and self.feed.into == "events" and \
            time.monotonic() - self._last_refresh < self.settings.derived_seconds
        if not defer:
            self._last_refresh = time.monotonic()
        self._deferred = defer  # a commit that refreshes also refreshes the deferred ones before it
        self._loading = self._loader.submit(self._commit_and_discard, files, slice_end, counters, likely_new, defer)

    def _commit_and_discard(self, files: list[StagingFile], slice_end: datetime | None, counters: dict,
                            likely_new: bool, defer: bool) -> None:
        try:
            self._commit_now(files, slice_end, counters, likely_new, defer)
        finally:
            for f in files:
                f.discard()

    def _commit_now(self, files: list[StagingFile], slice_end: datetime | None, counters: dict,
                    likely_new: bool = False, defer: bool = False) -> None:
        """Load the staged rows, the watermark and the run's counters in one transaction."""
        out = self.out
        watermark = (self.feed.source, self.scope, slice_end) if slice_end is not None else None
        with Store.open(self.settings.db) as store:
            result = load_staged(store, files, run_id=out.run_id, watermark=watermark,
                                 run_counters={"pages": counters["pages"]}, likely_new=likely_new,
                                 defer_derived=defer, into=self.feed.into)
        _add(out.loaded, result)
        out.pages += counters["pages"]
        out.other_sp_dropped += counters["other_sp"]
        if counters["other_sp"] and self.feed.into == "events":  # the audit log: other services are expected
            self.log.warning("other_sp_events", f"{counters['other_sp']} event(s) of other service principals "
                             f"ignored in {self.scope}", scope=self.scope, count=counters["other_sp"])
        self.log.info("slice_committed" if slice_end else "chunk_committed", scope=self.scope, source=self.feed.source,
                      slice_end=slice_end, pages=counters["pages"], events=result.read, new=result.new,
                      updated=result.updated, rejected=result.invalid)


async def _pull_all(settings: PullSettings, log: RunLog) -> GraphOutcome:
    auth_provider, method = build_auth_provider(settings.auth, credential=settings.credential)
    tenant = settings.auth.tenant_id or "default"
    outcome = GraphOutcome()
    query_style = {"top": settings.top, "sp_filter": "eq"}
    log.info("graph_start", base_url=settings.base_url, auth=method, cloud=settings.auth.cloud.name,
             tenant=tenant, service_principals=settings.service_principal_ids or ["*"],
             rate=f"{settings.rate[0]}/{settings.rate[1]:g}s" if settings.rate else "off")
    async with GraphSession(auth_provider, settings.base_url, pacer=Pacer(settings.rate), policy=settings.policy,
                            log=log, timeout=settings.timeout) as session:
        pulls = [ScopePull(session, settings, log, tenant, feed=DirectoryAuditFeed(
            session, settings, log, settings.service_principal_ids))] if settings.audit_logs else []
        pulls += [ScopePull(session, settings, log, tenant, sp, query_style)
                  for sp in settings.service_principal_ids or [None]]
        for pull in pulls:
            scope = await pull.run()
            if isinstance(pull.feed, DirectoryAuditFeed):
                outcome.audit = scope
            else:
                outcome.scopes.append(scope)
            level = "summary" if scope.exit_code == exitcodes.OK else "error"
            log.event("scope_done", scope.summary() + (f"; {scope.error}" if scope.error else ""), level=level,
                      scope=scope.scope, run_id=scope.run_id, outcome=scope.outcome, exit_code=scope.exit_code,
                      pages=scope.pages, events=scope.loaded.read, new=scope.loaded.new,
                      updated=scope.loaded.updated, rejected=scope.loaded.invalid,
                      other_sp_ignored=scope.other_sp_dropped, job_snapshots=scope.job_snapshots,
                      source=scope.source)
            if scope.exit_code == exitcodes.AUTH and scope is not outcome.audit:
                break  # the same credentials will fail for the next service principal too
        outcome.requests = session.stats.requests
        outcome.retries = session.stats.retries
        outcome.throttled = session.stats.throttled
    return outcome


def pull_graph(settings: PullSettings, log: RunLog | None = None) -> GraphOutcome:
    """Run a pull to completion (or to a clear failure); see :class:`GraphOutcome` for the exit code."""
    return asyncio.run(_pull_all(settings, log or RunLog()))
