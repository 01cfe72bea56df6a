"""The ground truth (provlens-ground-truth/1), counted from the generated records themselves."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict

from .clock import iso_s
from .engine import Record
from .model import EMAIL as EMAIL_KEY
from .model import SKIP_CATEGORIES
from .names import ORG_DOMAINS
from .story import Story
from .texts import CODES

CONFLICT_CODES = {CODES["conflict_gallery"][0], CODES["conflict_custom"][0]}
BAD_REQUEST_CODE = CODES["bad_request"][0]


def _sorted_counts(counter: Counter) -> dict:
    return {str(key): counter[key] for key in sorted(counter)}


def _code(event: dict) -> str | None:
    info = event["provisioningStatusInfo"]["errorInformation"]
    return info["errorCode"] if info else None


def status(event: dict) -> str:
    return event["provisioningStatusInfo"]["status"]


def sp(event: dict) -> str:
    return event["servicePrincipal"]["id"]


def build_truth(*, seed: int, users: int, days: float, start: int, end: int, story: Story, out: Record,
                records: list[dict], scim_only: list[dict]) -> dict:
    events = out.events
    ticks = out.ticks
    failures = [e for e in events if status(e) == "failure"]
    truth = {
        "format": "provlens-ground-truth/1", "seed": seed, "users": users, "days": days,
        "start": iso_s(start), "end": iso_s(end), "tenant_id": story.tenant_id,
        "org_domains": list(ORG_DOMAINS),
        "apps": [{"service_principal_id": a.sp_id, "name": a.name, "job_id": a.job_id, "style": a.style,
                  "scim_tenant": a.scim_tenant}
                 for a in story.apps],
        "events": {
            "total": len(events),
            "ids_sha256": hashlib.sha256("\n".join(sorted(e["id"] for e in events)).encode()).hexdigest(),
            "by_status": _sorted_counts(Counter(status(e) for e in events)),
            "by_action": _sorted_counts(Counter(e["provisioningAction"] for e in events)),
            "by_status_action": _sorted_counts(
                Counter(f"{e['provisioningAction']}/{status(e)}" for e in events)),
            "by_service_principal": _sorted_counts(Counter(sp(e) for e in events)),
            "failures_by_code": _sorted_counts(Counter(_code(e) for e in failures)),
            "distinct_source_ids": len({e["sourceIdentity"]["id"] for e in events}),
        },
        "cycles": _cycles(events, ticks, out),
        "missed_cycles": sorted(out.missed, key=lambda m: m["expected_at"]),
        "quarantine": _quarantine(out, failures),
        "skips": _skips(events, out),
        "violations": _violations(story, events),
        "target_throttling_event_ids": [e["id"] for e in failures if _code(e) == CODES["throttled"][0]],
        "credential_failure_event_ids": [e["id"] for e in failures if _code(e) == CODES["credential"][0]],
        "scim": _scim(events, out, records, scim_only),
    }
    return truth


def _cycles(events: list[dict], ticks: dict, out: Record) -> list[dict]:
    groups: dict[tuple, list] = {}
    for e in events:
        groups.setdefault((e["jobId"], e["cycleId"]), []).append(e)
    cycles = []
    for (job_id, cycle_id), members in groups.items():
        first = min(members, key=lambda e: ticks[e["id"]])
        last = max(members, key=lambda e: ticks[e["id"]])
        cycles.append((ticks[first["id"]], {
            "service_principal_id": first["servicePrincipal"]["id"], "job_id": job_id, "cycle_id": cycle_id,
            "kind": out.cycle_kind[cycle_id], "started_at": first["activityDateTime"],
            "ended_at": last["activityDateTime"], "events": len(members)}))
    cycles.sort(key=lambda c: (c[0], c[1]["cycle_id"]))
    return [c[1] for c in cycles]


def _quarantine(out: Record, failures: list[dict]) -> list[dict]:
    result = []
    code = CODES["credential"][0]
    for q in out.quarantine:
        mine = [e for e in failures
                if e["servicePrincipal"]["id"] == q["service_principal_id"] and _code(e) == code]
        result.append(dict(q, first_failure_at=mine[0]["activityDateTime"] if mine else None,
                           last_failure_at=mine[-1]["activityDateTime"] if mine else None,
                           failed_events=len(mine)))
    return result


def _skips(events: list[dict], out: Record) -> dict:
    by_category = Counter(out.skip_category[e["id"]] for e in events if e["id"] in out.skip_category)
    users: dict[tuple, dict] = {}
    for e in events:
        if out.skip_category.get(e["id"]) != "default_access":
            continue
        key = (e["sourceIdentity"]["id"], e["servicePrincipal"]["id"])
        entry = users.setdefault(key, {
            "source_id": key[0], "upn": e["sourceIdentity"]["details"]["UserPrincipalName"],
            "service_principal_id": key[1], "first_seen": e["activityDateTime"], "cycles": set()})
        entry["last_seen"] = e["activityDateTime"]
        entry["cycles"].add(e["cycleId"])
    da_users = []
    for entry in users.values():
        da_users.append(dict(entry, cycles=len(entry["cycles"])))
    da_users.sort(key=lambda u: (u["service_principal_id"], u["upn"], u["source_id"]))
    return {"by_category": {c: by_category[c] for c in SKIP_CATEGORIES}, "default_access_users": da_users}


def _violations(story: Story, events: list[dict]) -> list[dict]:
    apps = {a.key: a for a in story.apps}
    by_object: dict[tuple, list] = defaultdict(list)
    for e in events:
        by_object[(e["servicePrincipal"]["id"], e["sourceIdentity"]["id"])].append(e)
    out = []
    for v in story.violations:
        app = apps[v.app]
        source_id = story.users[v.user].object_id
        mine = by_object[(app.sp_id, source_id)]
        codes = CONFLICT_CODES if v.kind == "duplicate_user_name" else {BAD_REQUEST_CODE}
        failed = [e for e in mine if e["provisioningStatusInfo"]["status"] == "failure" and _code(e) in codes]
        resolved = None
        if failed:
            later = [e for e in mine[mine.index(failed[0]):]
                     if e["provisioningAction"] == "create" and status(e) == "success"]
            resolved = later[0]["activityDateTime"] if later else None
        out.append({
            "kind": v.kind, "service_principal_id": app.sp_id, "source_id": source_id,
            "user_name": v.user_name, "email_domain": v.email_domain, "conflicts_with": v.conflicts_with,
            "preexisting_target": v.preexisting_target,
            "first_seen": failed[0]["activityDateTime"] if failed else None,
            "last_seen": failed[-1]["activityDateTime"] if failed else None,
            "failed_events": len(failed), "state": "resolved" if resolved else "open",
            "resolved_at": resolved, "style": app.style,
        })
    return out


def _scim(events: list[dict], out: Record, records: list[dict], scim_only: list[dict]) -> dict:
    position = {r["request_id"]: i for i, r in enumerate(records)}
    only = sorted(scim_only, key=lambda r: position[r["request_id"]])
    return {
        "total": len(records),
        "by_operation": _sorted_counts(Counter(r["operation"] for r in records)),
        "by_status": _sorted_counts(Counter(r["status"] for r in records)),
        "probes": sum(1 for r in records if r["operation"] == "probe"),
        "other_client": sum(1 for r in scim_only if r["operation"] != "probe"),
        "pairs": [list(p) for p in sorted(out.pairs, key=lambda p: position[p[1]])],
        "entra_only_event_ids": [e["id"] for e in events if e["id"] in out.skip_category],
        "scim_only_request_ids": [r["request_id"] for r in only],
        "contradictions": list(out.contradictions),
    }


def directory_audits_truth(entries: list[dict], audit_only_quarantine: list[dict]) -> dict:
    """The directory audit log's truth (issue 24): every entry, the provisioning service's, its configuration
    changes (who and when) and the quarantine periods only the audit log knows (before any job snapshot)."""
    from .audits import CONFIG_ACTIVITIES, SERVICE

    mine = [e for e in entries if e["loggedByService"] == SERVICE]

    def who(e: dict) -> str:
        by = e["initiatedBy"]
        return (by.get("user") or {}).get("userPrincipalName") or (by.get("app") or {}).get("displayName")

    def target(e: dict, key: str) -> str | None:
        return next((t["id"] for t in e["targetResources"] if t.get("type") == "ServicePrincipal"), None) \
            if key == "sp" else next((d["value"] for d in e["additionalDetails"] if d["key"] == "JobId"), None)

    return {
        "total": len(entries),
        "provisioning_ids_sha256": hashlib.sha256("\n".join(sorted(e["id"] for e in mine)).encode()).hexdigest(),
        "provisioning_total": len(mine),
        "by_activity": _sorted_counts(Counter(e["activityDisplayName"] for e in mine)),
        "config_changes": [{"at": e["activityDateTime"], "activity": e["activityDisplayName"], "by": who(e),
                            "service_principal_id": target(e, "sp"), "job_id": target(e, "job")}
                           for e in mine if e["activityDisplayName"] in CONFIG_ACTIVITIES],
        "audit_only_quarantine": audit_only_quarantine,
    }


def preflight_truth(story: Story, directory: dict) -> dict:
    """What preflight must find on each app (issue 26), per service principal, from the story's planted conditions
    and its final state (never from an expression evaluator): user object ids by condition.

    - ``nested_group_only``: reached only through the nested group (the roster's ``not_assigned``);
    - ``default_access_only``: assigned only the Default Access role (the roster's ``default_access``);
    - ``out_of_scope``: outside the job's scoping filter (``out_of_scope``); ``disabled``: accountEnabled false;
    - ``missing_required``: user id -> the required target attributes it lacks (the planted user without surname);
    - ``non_work_email``: the mail's domain is not an organisation domain (final state);
    - ``duplicate_user_name``: groups of provisioned users (directly or group assigned, in scope, holding a role
      other than Default Access; disabled ones too) whose userName is equal case-insensitively;
    - ``assigned``: every reachable user; ``unknown_attributes``: target attributes preflight cannot evaluate."""
    from .directory import final_state

    state, purged = final_state(story)
    planted = directory["planted"]
    out = {}
    for app in story.apps:
        cats: dict[str, list[str]] = {k: [] for k in ("nested_group_only", "default_access_only", "out_of_scope",
                                                      "disabled", "non_work_email")}
        reachable: dict[str, dict[str, str]] = {}
        provisioned: list[str] = []
        for idx, role in sorted(app.roster.items()):
            if idx in purged:
                continue
            oid = story.users[idx].object_id
            attrs = state[idx]
            reachable[oid] = attrs
            if role == "not_assigned":
                cats["nested_group_only"].append(oid)
            elif role == "default_access":
                cats["default_access_only"].append(oid)
            elif role == "out_of_scope":
                cats["out_of_scope"].append(oid)
            else:
                provisioned.append(oid)
            if attrs.get("active") == "False":
                cats["disabled"].append(oid)
            if attrs[EMAIL_KEY].split("@")[-1] not in ORG_DOMAINS:
                cats["non_work_email"].append(oid)
        missing: dict[str, list[str]] = {}
        if planted["no_surname_app"] == app.sp_id:
            oid = planted["no_surname"]
            user = directory["users"][oid]
            reachable[oid] = {"userName": user["userPrincipalName"]}
            provisioned.append(oid)
            missing[oid] = ["name.familyName"]
        by_name: dict[str, list[str]] = defaultdict(list)
        for oid in provisioned:
            by_name[reachable[oid]["userName"].lower()].append(oid)
        out[app.sp_id] = {
            **{k: sorted(v) for k, v in cats.items()},
            "missing_required": missing,
            "duplicate_user_name": sorted(sorted(ids) for ids in by_name.values() if len(ids) > 1),
            "assigned": sorted(reachable),
            "unknown_attributes": ["roles"],
        }
    return out
