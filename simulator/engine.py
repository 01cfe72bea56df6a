"""Runs one app's provisioning job cycle by cycle: decides each change's outcome and emits the
Entra events, the SCIM requests they cause, and job snapshots; records facts for the ground truth."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from . import events as ev
from . import scim, texts
from .clock import HOUR, MINUTE, SECOND, iso7, iso_s
from .ids import IdFactory
from .jobs import JobStatus
from .model import EMAIL, MAPPED, App, Change, User
from .names import ORG_DOMAINS

INTERVAL = 40 * MINUTE
RETRY_GAPS = [1, 2, 4, 8, 12]  # cycles until the next retry of an escrowed object
QUARANTINE_GAPS = [6 * HOUR, 12 * HOUR, 24 * HOUR]
# An alert story's rejected updates (app.reject): the app refuses a value Entra sends.
REJECTED_DETAIL = "Attribute 'department' has a value that is not allowed"


@dataclass
class Entry:
    """One user as this job sees it: source values, target values and escrow state."""

    src: dict | None = None
    tid: str | None = None
    tgt: dict | None = None
    attempts: int = 0
    due: int | None = None
    purge: bool = False


@dataclass
class Record:
    """Facts recorded while generating, for the ground truth."""

    events: list[dict] = field(default_factory=list)
    scim: list[dict] = field(default_factory=list)
    snapshots: list[dict] = field(default_factory=list)
    cycle_kind: dict[str, str] = field(default_factory=dict)
    skip_category: dict[str, str] = field(default_factory=dict)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    contradictions: list[dict] = field(default_factory=list)
    missed: list[dict] = field(default_factory=list)
    quarantine: list[dict] = field(default_factory=list)
    ticks: dict[str, int] = field(default_factory=dict)  # event id -> activityDateTime in ticks


class JobRun:
    """Simulates one synchronization job against its app's SCIM server."""

    def __init__(self, rng: random.Random, ids: IdFactory, app: App, users: list[User],
                 changes: list[Change], tenant_id: str, source_system_id: str, start: int, end: int,
                 out: Record) -> None:
        self.rng, self.ids, self.app, self.out = rng, ids, app, out
        self.changes, self.tenant_id, self.source_system_id = changes, tenant_id, source_system_id
        self.start, self.end = start, end
        self.users = users
        self.entries = {idx: Entry() for idx in sorted(app.roster)}
        for idx, entry in self.entries.items():
            if users[idx].join_at is None:
                entry.src = dict(users[idx].attrs)
        self.names = {low: rid for low, (rid, _) in app.preexisting.items()}
        self.releases = sorted(app.releases)
        self.throttles = list(app.throttles)
        self.contradictions = list(app.contradictions)
        self.missed = list(app.missed)
        self.status = JobStatus(app)
        self.account_of: dict[str, list] = {}
        self.accounts: list[list] = []  # [created_at, deleted_at, resource id, user name]
        self.web_responses = 0
        self.whole_second_counter = 0
        self.skip_counter: dict[str, int] = {}

    # ----------------------------------------------------------------------------- loop
    def run(self) -> None:
        rng, app = self.rng, self.app
        t = self.start + rng.randrange(60 * SECOND, 240 * SECOND)
        pointer, k = 0, 0
        quarantine: dict | None = None
        escrow: dict[int, None] = {}
        while t < self.end:
            t = self._stalled(t)
            if t >= self.end:
                break
            while self.releases and self.releases[0][0] <= t:
                self.names.pop(self.releases.pop(0)[1], None)
            dirty: dict[int, None] = {}
            if k == 0:
                dirty = {idx: None for idx, e in self.entries.items() if e.src is not None}
            while pointer < len(self.changes) and self.changes[pointer].at < t:
                change = self.changes[pointer]
                pointer += 1
                if change.user in self.entries and self._apply(change):
                    dirty[change.user] = None
            for idx in list(escrow):
                if self.entries[idx].due is not None and self.entries[idx].due <= k:
                    dirty[idx] = None
            bad = self._credential_bad(t)
            cycle_id = self.ids.guid()
            ended, counts = self._cycle(k, t, cycle_id, dirty, escrow, bad)
            failed_job = bad and (quarantine is not None or counts["credential"] > 0)
            state = "Failed" if failed_job else ("EntryLevelErrors" if counts["escrowed"] else "Succeeded")
            self.status.after_cycle(cycle_id, t, ended, counts, state, self._synced())
            if failed_job:
                if quarantine is None:
                    quarantine = {"began": ended, "count": 0, "failed_cycles": 0, "first_cycle": t}
                    self.status.enter_quarantine(ended)
                quarantine["count"] += 1
                quarantine["failed_cycles"] += 1
                nxt = t + QUARANTINE_GAPS[min(quarantine["count"] - 1, len(QUARANTINE_GAPS) - 1)]
                renewed = app.episode.renewed_at
                if renewed < nxt:
                    nxt = renewed + rng.randrange(2 * MINUTE, 6 * MINUTE)
                self.status.quarantine_next(nxt, quarantine["count"])
                self._snapshot(ended + rng.randrange(5 * SECOND, 60 * SECOND))
                for extra in range(ended + 2 * HOUR, min(nxt, self.end), 2 * HOUR):
                    self._snapshot(extra)
            else:
                if quarantine is not None:
                    self.out.quarantine.append({
                        "service_principal_id": app.sp_id, "began": iso7(quarantine["began"]),
                        "ended": iso7(t), "reason": "EncounteredQuarantineException",
                        "failed_cycles": quarantine["failed_cycles"]})
                    quarantine = None
                    self.status.leave_quarantine()
                self._snapshot(ended + rng.randrange(5 * SECOND, 60 * SECOND))
                nxt = t + INTERVAL + rng.randrange(-90 * SECOND, 90 * SECOND)
                if self.missed and nxt >= self.missed[0][0]:
                    _, skip = self.missed.pop(0)
                    later = nxt + skip * INTERVAL + rng.randrange(-60 * SECOND, 60 * SECOND)
                    self.out.missed.append({"service_principal_id": app.sp_id, "expected_at": iso7(nxt),
                                            "gap_minutes": round((later - t) / MINUTE, 1)})
                    nxt = later
            t, k = nxt, k + 1
        if quarantine is not None:
            self.out.quarantine.append({
                "service_principal_id": app.sp_id, "began": iso7(quarantine["began"]), "ended": None,
                "reason": "EncounteredQuarantineException", "failed_cycles": quarantine["failed_cycles"]})

    def _stalled(self, t: int) -> int:
        """An alert story's stall (``app.stall``): a cycle due inside it does not run; the job status is still
        captured every interval (unchanged: Active, the last execution before the stall). Returns when the job
        runs again."""
        stall = self.app.stall
        if stall is None or not stall[0] <= t < stall[1]:
            return t
        for captured in range(t, min(stall[1], self.end), INTERVAL):
            self._snapshot(captured)
        self.app.stall = None
        return stall[1]

    def _apply(self, change: Change) -> bool:
        entry = self.entries[change.user]
        if change.kind == "join":
            entry.src = dict(change.attrs)
        elif entry.src is None:
            return False
        elif change.kind == "purge":
            entry.purge = True
        else:
            entry.src.update(change.attrs)
        return True

    def _credential_bad(self, t: int) -> bool:
        ep = self.app.episode
        return ep is not None and ep.expires_at <= t < ep.renewed_at

    def _credential(self, t: int) -> str:
        ep = self.app.episode
        renewed = ep is not None and t >= ep.renewed_at
        return self.app.renewed_credential_id if renewed else self.app.credential_id

    def _synced(self) -> int:
        return sum(1 for e in self.entries.values() if e.tid is not None)

    def _snapshot(self, captured: int) -> None:
        if captured < self.end:
            self.out.snapshots.append(self.status.snapshot(captured))

    # ----------------------------------------------------------------------------- one cycle
    def _cycle(self, k: int, start: int, cycle_id: str, dirty: dict[int, None], escrow: dict[int, None],
               bad: bool) -> tuple[int, dict]:
        rng = self.rng
        initial = k == 0
        cursor = start + rng.randrange(20 * SECOND, 90 * SECOND) if initial else \
            start + rng.randrange(2 * SECOND, 20 * SECOND)
        counts = {"imported": 0, "exported": 0, "escrowed": 0, "entitled": 0, "credential": 0}
        for idx in dirty:
            cursor += rng.randrange(3 * SECOND // 10, 15 * SECOND // 10) if initial else \
                rng.randrange(2 * SECOND // 10, 3 * SECOND)
            counts["imported"] += 1
            result = self._process(idx, k, cursor, cycle_id, initial, bad)
            if result == "ok":
                counts["exported"] += 1
                escrow.pop(idx, None)
            elif result == "failed":
                counts["escrowed"] += 1
                counts["credential"] += bad
                escrow[idx] = None
            else:
                escrow.pop(idx, None)
        counts["entitled"] = sum(1 for i, c in self.app.roster.items() if c == "user")
        if dirty:
            self.out.cycle_kind[cycle_id] = "initial" if initial else "incremental"
        return cursor + rng.randrange(SECOND, 8 * SECOND), counts

    def _process(self, idx: int, k: int, t: int, cycle_id: str, initial: bool, bad: bool) -> str | None:
        """Handle one object in one cycle; returns "ok", "failed", "skipped" or None (nothing logged)."""
        entry, category = self.entries[idx], self.app.roster[idx]
        src = entry.src
        if category != "user":
            action = "create" if initial else "other"
            self._emit(idx, t, cycle_id, category, action, initial, ok=True, skip=category)
            return "skipped"
        if entry.purge:
            entry.purge = False
            if entry.tid is None:
                entry.src = None
                return None
            op = "delete"
        elif src["active"] == "False":
            if entry.tid is None or entry.tgt["active"] == "False":
                return None
            op = "disable"
        elif entry.tid is None:
            op = "create"
        elif any(src[key] != entry.tgt[key] for key in MAPPED):
            op = "update"
        else:
            self._emit(idx, t, cycle_id, "no_change", "other", initial, ok=True, skip="no_change")
            return "skipped"
        return self._write(idx, op, k, t, cycle_id, initial, bad)

    def _outcome(self, op: str, src: dict, entry: Entry, t: int, bad: bool) -> str:
        if bad:
            return "credential"
        if op == "create":
            owner = self.names.get(src["userName"].lower())
            if owner is not None and owner != entry.tid:
                return "conflict"
            if src[EMAIL].split("@")[1] not in ORG_DOMAINS:
                return "bad_request"
        reject = self.app.reject
        if op == "update" and reject is not None and reject[0] <= t < reject[1]:
            return "rejected"
        if self.throttles and t >= self.throttles[0]:
            self.throttles.pop(0)
            return "throttled"
        if op == "update" and self.contradictions and t >= self.contradictions[0][0]:
            return self.contradictions.pop(0)[1]
        return "ok"

    def _write(self, idx: int, op: str, k: int, t: int, cycle_id: str, initial: bool, bad: bool) -> str:
        rng, app, entry = self.rng, self.app, self.entries[idx]
        src, user = entry.src, self.users[idx]
        outcome = self._outcome(op, src, entry, t, bad)
        t = self._maybe_whole_second(t)
        event_id = self.ids.guid()
        cred = self._credential(t)
        entra = dict(client_ip=app.client_ip, user_agent=scim.ENTRA_AGENT, credential_id=cred)
        requests = []
        lookup = scim.record(self.ids, app, t - rng.randrange(4 * SECOND // 10, 25 * SECOND // 10), "GET",
                             "/Users", 401 if outcome == "credential" else 200, "user.search",
                             query=scim.search_query(src["userName"]), user_name=src["userName"],
                             duration_ms=rng.randrange(4, 40), **entra)
        if outcome == "credential":
            lookup["error_detail"] = "Invalid or expired token"
        requests.append(lookup)
        wt = t - rng.randrange(3 * SECOND // 100, 35 * SECOND // 100)
        rid = entry.tid
        write = None
        if outcome != "credential":
            status = {"conflict": 409, "bad_request": 400, "rejected": 400, "throttled": 429,
                      "entra_success_scim_error": 500}.get(outcome, 201 if op == "create" else 200)
            if op == "delete" and status == 200:
                status = 204
            fields = dict(user_name=src["userName"], duration_ms=rng.randrange(15, 160), **entra)
            if op == "create":
                if status == 201:
                    rid = self.ids.target_id()
                domain = src[EMAIL].split("@")[1]
                fields.update(resource_id=rid if status == 201 else None, external_id=user.object_id,
                              email_domains=[domain], email_types=["work"], active_after=True)
                write = scim.record(self.ids, app, wt, "POST", "/Users", status, "user.create", **fields)
            elif op == "delete":
                write = scim.record(self.ids, app, wt, "DELETE", f"/Users/{rid}", status, "user.delete",
                                    resource_id=rid, **fields)
            else:
                operation = "user.deactivate" if op == "disable" else "user.patch"
                fields.update(resource_id=rid, active_after=False if op == "disable" else None)
                if op == "update" and src[EMAIL] != entry.tgt[EMAIL]:
                    fields.update(email_domains=[src[EMAIL].split("@")[1]], email_types=["work"])
                write = scim.record(self.ids, app, wt, "PATCH", f"/Users/{rid}", status, operation, **fields)
            detail = {409: ("uniqueness", "Username is already in use"),
                      400: ("invalidValue", REJECTED_DETAIL if outcome == "rejected"
                            else "Only work email addresses are allowed"),
                      429: (None, "Rate limit exceeded"), 500: (None, "Internal server error")}.get(status)
            if detail:
                write["scim_type"], write["error_detail"] = detail
            requests.append(write)
        ok = outcome in ("ok", "entra_success_scim_error")
        error = None
        if not ok:
            error = self._error(outcome, entry, k, t)
        target_id, target_name = (rid or "", src["displayName"]) if rid else ("", "")
        props = ev.modified(op, src, entry.tgt)
        self._emit(idx, t, cycle_id, op, op, initial, ok=ok, error=error, event_id=event_id,
                   target=(target_id, target_name), props=props)
        for req in requests:
            self.out.pairs.append((event_id, req["request_id"]))
        self.out.scim.extend(requests)
        if outcome.startswith("entra_"):
            self.out.contradictions.append({"event_id": event_id, "request_id": write["request_id"],
                                            "kind": outcome})
        if not ok:
            return "failed"
        entry.attempts, entry.due = 0, None
        if op == "create":
            entry.tid, entry.tgt = rid, dict(src)
            self.names[src["userName"].lower()] = rid
            account = [t, None, rid, src["userName"]]
            self.accounts.append(account)
            self.account_of[rid] = account
        elif op == "delete":
            if self.names.get(entry.tgt["userName"].lower()) == rid:
                del self.names[entry.tgt["userName"].lower()]
            self.account_of[rid][1] = t
            entry.tid = entry.tgt = entry.src = None
        else:
            entry.tgt = dict(src)
        return "ok"

    def _error(self, outcome: str, entry: Entry, k: int, t: int) -> dict:
        retried = entry.attempts
        entry.attempts += 1
        gap = 1 if outcome in ("throttled", "entra_failure_scim_success", "credential") else \
            RETRY_GAPS[min(retried, len(RETRY_GAPS) - 1)]
        entry.due = k + gap
        retry_at = iso7(t + gap * INTERVAL + self.rng.randrange(-60 * SECOND, 60 * SECOND))
        app_name = self.app.name
        key = "bad_request" if outcome == "rejected" else outcome
        if outcome == "conflict":
            key = "conflict_gallery" if self.app.style == "gallery" else "conflict_custom"
        elif outcome == "entra_failure_scim_success":
            key = "timeout"
        code, category = texts.CODES[key]
        if key == "conflict_gallery":
            reason = texts.gallery_conflict_reason(app_name)
        elif key == "timeout":
            reason = texts.timeout_reason(app_name, retried, retry_at)
        else:
            status, scim_type, detail = {
                "conflict_custom": (409, "uniqueness", "Username is already in use"),
                "bad_request": (400, "invalidValue", REJECTED_DETAIL if outcome == "rejected"
                                else "Only work email addresses are allowed"),
                "throttled": (429, None, "Rate limit exceeded"),
                "credential": (401, None, "Invalid or expired token")}[key]
            self.web_responses += 1
            numeric = self.web_responses % 4 == 0
            reason = texts.custom_reason(status, scim_type, detail, numeric, retried, retry_at)
        return ev.error_information(code, category, reason)

    def _maybe_whole_second(self, t: int) -> int:
        """About one event in 29 is logged without fractional seconds, as Graph sometimes does."""
        self.whole_second_counter += 1
        return t - t % SECOND if self.whole_second_counter % 29 == 5 else t

    def _emit(self, idx: int, t: int, cycle_id: str, op: str, action: str, initial: bool, *, ok: bool,
              skip: str | None = None, error: dict | None = None, event_id: str | None = None,
              target: tuple[str, str] = ("", ""), props: list | None = None) -> None:
        rng, entry, user = self.rng, self.entries[idx], self.users[idx]
        src = entry.src
        event_id = event_id or self.ids.guid()
        status = "success" if ok else "failure"
        if skip is not None:
            t = self._maybe_whole_second(t)
            status = "skipped"
            self.skip_counter[skip] = self.skip_counter.get(skip, 0) + 1
            if skip == "no_change":
                code = "RedundantExport"
            else:
                code = "EntrySynchronizationSkipped" if self.skip_counter[skip] % 2 else None
            error = ev.error_information(code, "nonServiceFailure", texts.skip_reason(src["userName"], skip))
            self.out.skip_category[event_id] = skip
        when = iso_s(t) if t % SECOND == 0 else iso7(t)
        step_list = ev.steps(op, src["userName"], user.object_id, src["active"], self.app.name, initial, ok)
        self.out.events.append(ev.event(
            app=self.app, tenant_id=self.tenant_id, source_system_id=self.source_system_id,
            event_id=event_id, when=when, cycle_id=cycle_id, change_id=self.ids.guid(),
            duration_ms=rng.randrange(120, 3500), action=action, status=status, error=error,
            step_list=step_list, props=props or [], source_id=user.object_id, src=src,
            target_id=target[0], target_name=target[1]))
        self.out.ticks[event_id] = t
