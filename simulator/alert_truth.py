"""The alerts a simulated tenant should raise at a given time (issue 24), from the simulation's own records: its
events, its SCIM audit trail (which client is Entra is known here, not guessed), its job snapshots (the job's true
status and executions) and the ground truth (quarantine periods, violations, SCIM-only requests).

:func:`expected_alerts` returns the set of ``(rule, key)`` active at ``at`` under the given thresholds, with the
rules' definitions as the README states them, computed in plain Python over those records (never from provlens'
store). ``stale_data`` is about provlens' own runs, not the tenant: the tests check it against ``ingest_runs``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta, timezone

from .scim import ENTRA_AGENT

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
INFINITY = datetime.max.replace(tzinfo=timezone.utc)


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    t = datetime.fromisoformat(head).replace(tzinfo=timezone.utc)
    return t + timedelta(microseconds=int((frac + "000000")[:6])) if frac else t


def _code(e: dict) -> str | None:
    info = e["provisioningStatusInfo"]["errorInformation"]
    return info["errorCode"] if info else None


class Facts:
    """The records of one simulation, indexed for :func:`expected_alerts`."""

    def __init__(self, sim, *, scim: bool = True):
        self.truth = sim.truth
        self.jobs = {a["service_principal_id"]: a["job_id"] for a in sim.truth["apps"]}
        self.scim_sp = {a["scim_tenant"]: a["service_principal_id"] for a in sim.truth["apps"]}
        self.events = sorted(({"t": _parse(e["activityDateTime"]), "sp": e["servicePrincipal"]["id"],
                               "job": e["jobId"], "cycle": e["cycleId"],
                               "status": e["provisioningStatusInfo"]["status"],
                               "code": _code(e), "source": e["sourceIdentity"]["id"]} for e in sim.events),
                             key=lambda e: e["t"])
        self.snapshots = sorted(({"t": _parse(s["capturedAt"]), "sp": s["servicePrincipalId"], "job": s["job"]["id"],
                                  "status": s["job"]["status"]} for s in sim.job_snapshots), key=lambda s: s["t"])
        self.scim = sorted(({"t": _parse(r["ts"]), **r} for r in sim.scim_records), key=lambda r: r["t"]) \
            if scim else []
        self.scim_only = set(sim.truth["scim"]["scim_only_request_ids"]) if scim else set()
        cycles: dict[tuple, dict] = {}
        for e in self.events:
            c = cycles.setdefault((e["job"], e["cycle"]), {"sp": e["sp"], "job": e["job"], "cycle": e["cycle"],
                                                           "started": e["t"], "ended": e["t"], "success": 0,
                                                           "failure": 0})
            c["ended"] = max(c["ended"], e["t"])
            c["started"] = min(c["started"], e["t"])
            c["success"] += e["status"] == "success"
            c["failure"] += e["status"] == "failure"
        self.cycles = list(cycles.values())
        self.data_begins = self.events[0]["t"] if self.events else None

    def latest_snapshot(self, sp: str, at: datetime) -> dict | None:
        found = None
        for s in self.snapshots:
            if s["t"] > at:
                break
            if s["sp"] == sp:
                found = s
        return found

    def last_execution(self, sp: str, at: datetime) -> dict | None:
        """The job's latest execution that ended by ``at`` (the simulator's own record of it)."""
        found = None
        for s in self.snapshots:
            last = s["status"]["lastExecution"]
            if s["sp"] == sp and last and _parse(last["timeEnded"]) <= at:
                if found is None or _parse(last["timeEnded"]) > _parse(found["timeEnded"]):
                    found = last
        return found


def _quarantine(f: Facts, at: datetime) -> set:
    out = set()
    for q in f.truth["quarantine"]:
        ended = _parse(q["ended"]) or INFINITY
        if _parse(q["began"]) <= at < ended:
            out.add(("quarantine", f"{q['service_principal_id']}/{f.jobs[q['service_principal_id']]}"))
    return out


def _quiet(f: Facts, at: datetime, th: dict) -> set:
    out = set()
    limit = th["intervals"] * timedelta(minutes=th["default_interval_minutes"])  # the simulator's jobs: PT40M
    for sp, job in f.jobs.items():
        snap = f.latest_snapshot(sp, at)
        if snap is None or snap["status"]["code"] != "Active":
            continue
        ends = [min(c["ended"], at) for c in f.cycles if c["sp"] == sp and c["started"] <= at]
        if not ends or at - max(ends) <= limit:
            continue
        last = f.last_execution(sp, at)
        recent = last is not None and at - _parse(last["timeEnded"]) <= limit and last["state"] != "Failed"
        out.add(("quiet", f"{sp}/{job}/{'nothing_changed' if recent else 'stopped'}"))
    return out


def _new_error(f: Facts, at: datetime, th: dict) -> set:
    out = set()
    by_code: dict[tuple, list] = defaultdict(list)
    for e in f.events:
        if e["t"] <= at and e["status"] == "failure" and e["code"]:
            by_code[(e["sp"], e["job"], e["code"])].append(e["t"])
    for (sp, job, code), times in by_code.items():
        start = times[0]
        for prev, t in zip(times, times[1:]):
            if t - prev > timedelta(days=th["lookback_days"]):
                start = t
        if at - start < timedelta(hours=th["active_hours"]) and \
                start - f.data_begins >= timedelta(hours=th["min_history_hours"]):
            out.add(("new_error", f"{sp}/{job}/{code}"))
    return out


def _failure_spike(f: Facts, at: datetime, th: dict) -> set:
    out = set()
    n = th["cycles"]
    for sp, job in f.jobs.items():
        done = sorted((c for c in f.cycles if c["job"] == job and c["ended"] <= at and c["success"] + c["failure"]),
                      key=lambda c: (c["ended"], c["cycle"]), reverse=True)
        recent, older = done[:n], done[n:]
        if not recent:
            continue
        first = min(c["started"] for c in recent)
        base = [c for c in older if c["ended"] >= first - timedelta(days=th["baseline_days"])]
        s, fl = sum(c["success"] for c in recent), sum(c["failure"] for c in recent)
        bs, bf = sum(c["success"] for c in base), sum(c["failure"] for c in base)
        if len(base) < n or not bs + bf:
            continue
        rate, base_rate = fl / (s + fl), bf / (bs + bf)
        if fl >= th["min_failures"] and rate >= th["min_rate"] and rate >= th["factor"] * base_rate:
            out.add(("failure_spike", f"{sp}/{job}"))
    return out


def _credential(f: Facts, at: datetime) -> set:
    """Bad: an Entra failure with the credential code, or a 401/403 answered to Entra's client (its user agent);
    good: an Entra success, or an answer below 400 to Entra's client. Active while the latest is bad."""
    evidence: dict[str, list] = defaultdict(list)
    for e in f.events:
        if e["t"] > at:
            break
        if e["status"] == "success":
            evidence[e["sp"]].append((e["t"], False))
        elif e["status"] == "failure" and e["code"] and "CredentialValidation" in e["code"]:
            evidence[e["sp"]].append((e["t"], True))
    for r in f.scim:
        if r["t"] > at:
            break
        sp = f.scim_sp.get(r["tenant"])
        if r["user_agent"] != ENTRA_AGENT or sp is None:
            continue
        if r["status"] in (401, 403):
            evidence[sp].append((r["t"], True))
        elif r["status"] < 400:
            evidence[sp].append((r["t"], False))
    out = set()
    for sp, items in evidence.items():
        if max(items)[1]:
            out.add(("credential", sp))
    return out


def _violations(f: Facts, at: datetime) -> set:
    out = set()
    for v in f.truth["violations"]:
        first = _parse(v["first_seen"])
        if first is None or first > at:
            continue
        if v["resolved_at"] is None or at < _parse(v["resolved_at"]):
            sp = v["service_principal_id"]
            out.add(("violation", f"{sp}/{f.jobs[sp]}/{v['kind']}"))  # one alert per app, job and kind
    return out


def _unlogged(f: Facts, at: datetime, th: dict) -> set:
    since = at - timedelta(hours=th["window_hours"])
    writes: dict[str, int] = defaultdict(int)
    for r in f.scim:
        if r["request_id"] in f.scim_only and r["method"] in WRITES and r["operation"] != "probe" \
                and since < r["t"] <= at:
            writes[f"{r['tenant']}/{r['credential_id'] or r['user_agent'] or r['client_ip']}"] += 1
    return {("unlogged_writes", key) for key, n in writes.items() if n >= max(1, th["min_writes"])}


def _quarantine_risk(f: Facts, at: datetime, th: dict) -> set:
    out = set()
    warn = th["warn_at"]
    for sp, job in f.jobs.items():
        snap = f.latest_snapshot(sp, at) or {"status": {"code": None, "lastExecution": None}}
        if snap["status"]["code"] == "Quarantine":
            continue
        latest: dict[str, str] = {}
        for e in f.events:
            if e["t"] > at:
                break
            if e["sp"] == sp and e["status"] in ("success", "failure") and e["source"]:
                latest[e["source"]] = e["status"]
        last = snap["status"]["lastExecution"] or {}
        escrowed = max(last.get("countEscrowed") or 0, sum(1 for s in latest.values() if s == "failure"))
        entitled, exported = last.get("countEntitled"), last.get("countExported")
        share = max(escrowed / entitled if entitled else 0.0,
                    escrowed / (escrowed + exported) if escrowed and exported is not None else 0.0)
        if (escrowed >= warn * th["evaluation_from"] and share >= warn * th["failed_share"]) \
                or escrowed >= warn * th["total_failures"] or escrowed >= warn * th["absolute_failures"]:
            out.add(("quarantine_risk", f"{sp}/{job}"))
    return out


def expected_alerts(facts: Facts, at: datetime, thresholds: dict[str, dict], *,
                    rules: tuple[str, ...] | None = None) -> set[tuple[str, str]]:
    """The (rule, key) pairs active at ``at``; ``thresholds``: each rule's settings (as in provlens.toml)."""
    found = (_quarantine(facts, at) | _quiet(facts, at, thresholds["quiet"])
             | _new_error(facts, at, thresholds["new_error"]) | _failure_spike(facts, at, thresholds["failure_spike"])
             | _credential(facts, at) | _violations(facts, at)
             | _unlogged(facts, at, thresholds["unlogged_writes"])
             | _quarantine_risk(facts, at, thresholds["quarantine_risk"]))
    return {a for a in found if rules is None or a[0] in rules}
