"""Tests for simulator/: determinism, shapes, every injected condition, truth consistency, files."""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from simulator import Simulation, generate, write
from simulator.__main__ import main

SMALL = dict(seed=1, users=30, days=3)
WEB_RESPONSE = re.compile(r"Web Response: (\{.*?\})\. This operation")
GALLERY_409 = ("Message: Leapsome returned an error response with the HTTP status code 409.  This response "
               "indicates that a user or a group already exisits with the same name.")


def parse_time(text: str) -> datetime:
    """Parse Graph (up to 7 fractional digits) and RFC 3339 millisecond timestamps."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,7}))?Z", text)
    assert m, text
    base = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    frac = (m.group(2) or "0").ljust(7, "0")
    return base + timedelta(microseconds=int(frac) / 10)


def parsed_status(event: dict) -> int | None:
    """The HTTP status a failure reports: from the embedded Web Response or the gallery wording."""
    info = event["provisioningStatusInfo"]["errorInformation"] or {}
    reason = info.get("reason") or ""
    m = WEB_RESPONSE.search(reason)
    if m:
        return int(json.loads(m.group(1))["status"])
    m = re.search(r"HTTP status code (\d{3})", reason)
    return int(m.group(1)) if m else None


def code(event: dict) -> str | None:
    info = event["provisioningStatusInfo"]["errorInformation"]
    return info["errorCode"] if info else None


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return generate(**SMALL)


@pytest.fixture(scope="module")
def written(sim, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sim")
    return out, write(sim, out, page_size=50)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------- determinism
def test_same_arguments_give_identical_files(tmp_path):
    write(generate(**SMALL), tmp_path / "a", page_size=50)
    write(generate(**SMALL), tmp_path / "b", page_size=50)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) >= 5
    assert a == b


def test_different_seed_gives_different_data():
    one, two = generate(**SMALL), generate(**dict(SMALL, seed=2))
    assert one.truth["events"]["ids_sha256"] != two.truth["events"]["ids_sha256"]
    assert one.scim_records != two.scim_records


def test_end_argument_and_default():
    end = datetime(2026, 6, 1, tzinfo=timezone.utc)
    sim = generate(**SMALL, end=end)
    assert sim.truth["end"] == "2026-06-01T00:00:00Z" and sim.truth["start"] == "2026-05-29T00:00:00Z"
    for e in sim.events:
        assert end - timedelta(days=3) <= parse_time(e["activityDateTime"]) < end
    assert generate(**SMALL).truth["end"] == "2026-11-01T00:00:00Z"


# ----------------------------------------------------------------------------------- shapes
REQUIRED = ["id", "activityDateTime", "tenantId", "jobId", "cycleId", "changeId", "durationInMilliseconds",
            "provisioningAction", "provisioningStatusInfo", "provisioningSteps", "modifiedProperties",
            "servicePrincipal", "sourceSystem", "targetSystem", "initiatedBy", "sourceIdentity",
            "targetIdentity"]


def test_event_shape(sim):
    assert sim.events
    sp_ids = {a["service_principal_id"] for a in sim.truth["apps"]}
    change_ids = Counter()
    for e in sim.events:
        for key in REQUIRED:
            assert key in e, key
        assert isinstance(e["servicePrincipal"], dict) and e["servicePrincipal"]["id"] in sp_ids
        assert e["provisioningAction"] in {"create", "update", "disable", "delete", "other"}
        assert e["provisioningStatusInfo"]["status"] in {"success", "failure", "skipped"}
        assert e["initiatedBy"]["initiatorType"] == "system"
        assert e["sourceIdentity"]["identityType"] == "User"
        assert set(e["sourceIdentity"]["details"]) == {"id", "odatatype", "DisplayName", "UserPrincipalName"}
        assert e["targetIdentity"]["identityType"] == "urn:ietf:params:scim:schemas:core:2.0:User"
        assert set(e["targetSystem"]["details"]) == {"ApplicationId", "ServicePrincipalId",
                                                     "ServicePrincipalDisplayName"}
        for step in e["provisioningSteps"]:
            assert step["provisioningStepType"] in {"import", "scoping", "matching", "export"}
            assert all(isinstance(v, str) for v in step["details"].values())
        for prop in e["modifiedProperties"]:
            assert prop["oldValue"] is None or isinstance(prop["oldValue"], str)
            assert prop["newValue"] is None or isinstance(prop["newValue"], str)
        tid = e["targetIdentity"]["id"]
        assert tid == "" or re.fullmatch(r"u_[0-9a-f]{8}", tid)
        if e["provisioningAction"] == "create" and e["provisioningStatusInfo"]["status"] == "failure":
            assert tid == ""
        change_ids[e["changeId"]] += 1
        assert e["jobId"].split(".")[1] == e["tenantId"].replace("-", "")
    assert max(change_ids.values()) == 1
    seven = sum(1 for e in sim.events if re.search(r"\.\d{7}Z$", e["activityDateTime"]))
    whole = sum(1 for e in sim.events if re.search(r":\d\dZ$", e["activityDateTime"]))
    assert seven + whole == len(sim.events) and seven > 0.9 * len(sim.events) and whole > 0


def test_sorted_outputs(sim):
    keys = [(parse_time(e["activityDateTime"]), e["id"]) for e in sim.events]
    assert keys == sorted(keys)
    rkeys = [(r["ts"], r["request_id"]) for r in sim.scim_records]
    assert rkeys == sorted(rkeys)
    assert len({r["request_id"] for r in sim.scim_records}) == len(sim.scim_records)
    for r in sim.scim_records:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["ts"])
        assert r["path"].startswith("/scim/v2/") and isinstance(r["status"], int)
        assert r["tenant"] in {"leapsome-prod", "leapsome-sandbox"}
        assert re.fullmatch(r"cred-[0-9a-f]{4}", r["credential_id"])


def test_cycles_and_import_texts(sim):
    by_cycle = defaultdict(list)
    for e in sim.events:
        by_cycle[e["cycleId"]].append(e)
    for cycle in sim.truth["cycles"]:
        members = by_cycle[cycle["cycle_id"]]
        assert len(members) == cycle["events"]
        assert {m["jobId"] for m in members} == {cycle["job_id"]}
        first = members[0]["provisioningSteps"][0]["description"]
        if cycle["kind"] == "initial":
            assert first.startswith("Retrieved User '")
        else:
            assert re.match(r"Received User '.+' change of type \((Add|Update|Delete)\) from", first)
    assert sum(c["events"] for c in sim.truth["cycles"]) == len(sim.events)
    kinds = Counter(c["kind"] for c in sim.truth["cycles"])
    assert kinds["initial"] == 2 and kinds["incremental"] > 10


def test_job_snapshots(sim):
    snaps = sim.job_snapshots
    assert snaps and [s["capturedAt"] for s in snaps] == sorted(s["capturedAt"] for s in snaps)
    jobs = {a["service_principal_id"]: a["job_id"] for a in sim.truth["apps"]}
    for s in snaps:
        job = s["job"]
        assert job["id"] == jobs[s["servicePrincipalId"]]
        assert job["schedule"]["interval"] == "PT40M"
        assert job["status"]["code"] in {"Active", "Quarantine"}
        assert job["status"]["synchronizedEntryCountByType"][0]["value"] >= 0
    quarantined = [s for s in snaps if s["job"]["status"]["code"] == "Quarantine"]
    assert quarantined
    assert all(s["job"]["status"]["quarantine"]["reason"] == "EncounteredQuarantineException"
               for s in quarantined)


# ----------------------------------------------------------------------------------- conditions
def test_violations_are_in_the_events(sim):
    violations = sim.truth["violations"]
    assert {v["kind"] for v in violations} == {"duplicate_user_name", "non_work_email"}
    assert {v["style"] for v in violations if v["kind"] == "duplicate_user_name"} == {"gallery", "custom"}
    assert {v["state"] for v in violations} == {"open", "resolved"}
    duplicates = [v for v in violations if v["kind"] == "duplicate_user_name"]
    assert {v["preexisting_target"] for v in duplicates} == {True, False}
    for v in violations:
        expected = 409 if v["kind"] == "duplicate_user_name" else 400
        mine = [e for e in sim.events if e["sourceIdentity"]["id"] == v["source_id"]
                and e["servicePrincipal"]["id"] == v["service_principal_id"]]
        failed = [e for e in mine if e["provisioningStatusInfo"]["status"] == "failure"
                  and parsed_status(e) == expected]
        assert len(failed) == v["failed_events"] >= 2, v
        assert failed[0]["activityDateTime"] == v["first_seen"]
        assert failed[-1]["activityDateTime"] == v["last_seen"]
        assert all(e["provisioningAction"] == "create" and e["targetIdentity"]["id"] == "" for e in failed)
        if v["kind"] == "duplicate_user_name":
            assert v["conflicts_with"].lower() == v["user_name"].lower()
        else:
            assert v["email_domain"] in {"gmail.com", "web.de", "outlook.com"}
        successes = [e for e in mine if e["provisioningAction"] == "create"
                     and e["provisioningStatusInfo"]["status"] == "success"]
        if v["state"] == "resolved":
            assert successes and successes[0]["activityDateTime"] == v["resolved_at"]
        else:
            assert not successes and v["resolved_at"] is None


def test_error_styles(sim):
    codes = Counter(code(e) for e in sim.events if e["provisioningStatusInfo"]["status"] == "failure")
    assert codes["LeapsomeEntryConflict"] and codes["SystemForCrossDomainIdentityManagementBadRequest"]
    custom = "SystemForCrossDomainIdentityManagementServiceIncompatibleFiltering"
    assert codes[custom] and codes["TooManyRequests"] and codes["Timeout"]
    styles = {a["service_principal_id"]: a["style"] for a in sim.truth["apps"]}
    kinds_of_status = set()
    for e in sim.events:
        info = e["provisioningStatusInfo"]["errorInformation"]
        if code(e) == "LeapsomeEntryConflict":
            assert info["reason"].startswith(GALLERY_409) and info["errorCategory"] == "nonServiceFailure"
            assert styles[e["servicePrincipal"]["id"]] == "gallery"
        if code(e) == custom:
            assert styles[e["servicePrincipal"]["id"]] == "custom"
            assert info["reason"].startswith("StatusCode: Conflict Message: Processing of the HTTP request")
            assert re.search(r"retried \d+ times\. It will be retried again after this date: "
                             r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z UTC$", info["reason"])
        m = WEB_RESPONSE.search(info["reason"] or "") if info else None
        if m:
            body = json.loads(m.group(1))
            kinds_of_status.add(type(body["status"]))
            assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert kinds_of_status == {str, int}


def test_default_access_users_never_reach_scim(sim):
    users = sim.truth["skips"]["default_access_users"]
    assert users and {u["service_principal_id"] for u in users} == {a["service_principal_id"]
                                                                    for a in sim.truth["apps"]}
    names = {r["user_name"].lower() for r in sim.scim_records if r["user_name"]}
    externals = {r["external_id"] for r in sim.scim_records if r["external_id"]}
    for u in users:
        mine = [e for e in sim.events if e["sourceIdentity"]["id"] == u["source_id"]
                and e["servicePrincipal"]["id"] == u["service_principal_id"]]
        assert mine and all(e["provisioningStatusInfo"]["status"] == "skipped" for e in mine)
        assert all(e["provisioningAction"] in {"create", "other"} for e in mine)
        assert len({e["cycleId"] for e in mine}) == u["cycles"] >= 2
        for e in mine:
            scoping = [s for s in e["provisioningSteps"] if s["name"] == "EntrySynchronizationScoping"][0]
            assert scoping["details"]["User has the required role"] == "False"
            assert scoping["details"]["SkipReason"] == "NotEffectivelyEntitled"
        assert u["upn"].lower() not in names and u["source_id"] not in externals


def test_skip_categories(sim):
    by_category = sim.truth["skips"]["by_category"]
    assert all(by_category[c] > 0 for c in ["default_access", "not_assigned", "out_of_scope", "inactive",
                                             "no_change"])
    skipped = [e for e in sim.events if e["provisioningStatusInfo"]["status"] == "skipped"]
    assert len(skipped) == sum(by_category.values())
    assert sorted(e["id"] for e in skipped) == sorted(sim.truth["scim"]["entra_only_event_ids"])
    codes = Counter(code(e) for e in skipped)
    assert codes["EntrySynchronizationSkipped"] and codes[None] and codes["RedundantExport"]
    for e in skipped:
        assert e["provisioningStatusInfo"]["errorInformation"]["reason"].startswith("The User '")
    details = [s["details"] for e in skipped for s in e["provisioningSteps"]]
    assert any(d.get("Assigned to the application") == "False" for d in details)
    assert any(d.get("Active in the source system") == "False" for d in details)
    assert any(d.get("Scoping filter evaluation passed") == "False" and "ScopeEvaluationResult" in d
               for d in details)
    assert any(s["name"] == "EntrySynchronizationSkip" for e in skipped for s in e["provisioningSteps"])


def test_quarantine_episode(sim):
    (q,) = sim.truth["quarantine"]
    assert q["reason"] == "EncounteredQuarantineException" and q["failed_cycles"] >= 1
    began, ended = parse_time(q["began"]), parse_time(q["ended"])
    assert began < ended
    ids = sim.truth["credential_failure_event_ids"]
    assert ids and len(ids) == q["failed_events"]
    by_id = {e["id"]: e for e in sim.events}
    for i in ids:
        assert code(by_id[i]) == "SystemForCrossDomainIdentityManagementCredentialValidationFailure"
        assert parse_time(by_id[i]["activityDateTime"]) < ended
    assert any(r["status"] == 401 for r in sim.scim_records)
    assert any(r["status"] == 401 and r["operation"] == "probe" for r in sim.scim_records)


def test_missed_cycles_and_gaps(sim):
    missed = sim.truth["missed_cycles"]
    assert 1 <= len(missed) <= 2
    for m in missed:
        assert 70 <= m["gap_minutes"] <= 130
        expected = parse_time(m["expected_at"])
        began = sorted(parse_time(s["job"]["status"]["lastExecution"]["timeBegan"])
                       for s in sim.job_snapshots if s["servicePrincipalId"] == m["service_principal_id"])
        assert not any(abs(b - expected) < timedelta(minutes=10) for b in began)


def test_throttling_and_contradictions(sim):
    by_id = {e["id"]: e for e in sim.events}
    requests = {r["request_id"]: r for r in sim.scim_records}
    throttled = sim.truth["target_throttling_event_ids"]
    assert throttled and all(code(by_id[i]) == "TooManyRequests" for i in throttled)
    assert len(throttled) == sum(1 for r in sim.scim_records if r["status"] == 429)
    kinds = {c["kind"] for c in sim.truth["scim"]["contradictions"]}
    assert kinds == {"entra_success_scim_error", "entra_failure_scim_success"}
    for c in sim.truth["scim"]["contradictions"]:
        event, request = by_id[c["event_id"]], requests[c["request_id"]]
        if c["kind"] == "entra_success_scim_error":
            assert event["provisioningStatusInfo"]["status"] == "success" and request["status"] >= 500
        else:
            assert code(event) == "Timeout" and 200 <= request["status"] < 300


def test_pairs_match_events(sim):
    by_id = {e["id"]: e for e in sim.events}
    requests = {r["request_id"]: r for r in sim.scim_records}
    pairs = sim.truth["scim"]["pairs"]
    assert pairs
    for event_id, request_id in pairs:
        e, r = by_id[event_id], requests[request_id]
        t, ts = parse_time(e["activityDateTime"]), parse_time(r["ts"])
        assert t - timedelta(seconds=60) <= ts <= t + timedelta(seconds=5)
        upn = e["sourceIdentity"]["details"]["UserPrincipalName"]
        assert (r["user_name"] or "").lower() == upn.lower() or \
            (r["resource_id"] and r["resource_id"] == e["targetIdentity"]["id"])
        assert r["user_agent"] == "Microsoft Azure AD SCIM provisioning 1.0.0"
    paired = {p[1] for p in pairs}
    only = set(sim.truth["scim"]["scim_only_request_ids"])
    assert not paired & only and paired | only == set(requests)
    assert not {p[0] for p in pairs} & set(sim.truth["scim"]["entra_only_event_ids"])
    other = [requests[i] for i in only if requests[i]["user_agent"] == "leapsome-hris-sync/2.3"]
    assert sum(1 for r in other if r["method"] == "PATCH") >= 2
    assert len(other) == sim.truth["scim"]["other_client"]
    assert {r["client_ip"] for r in other}.isdisjoint({requests[p]["client_ip"] for p in paired})


def test_creates_carry_external_id(sim):
    by_id = {e["id"]: e for e in sim.events}
    requests = {r["request_id"]: r for r in sim.scim_records}
    for event_id, request_id in sim.truth["scim"]["pairs"]:
        r = requests[request_id]
        if r["operation"] == "user.create":
            assert r["external_id"] == by_id[event_id]["sourceIdentity"]["id"]
            if r["status"] == 201:
                assert r["resource_id"] == by_id[event_id]["targetIdentity"]["id"]


def test_truth_counts(sim):
    t = sim.truth
    assert t["format"] == "provlens-ground-truth/1" and t["org_domains"] == ["contoso.com", "contoso.de"]
    ev = t["events"]
    assert ev["total"] == len(sim.events) == sum(ev["by_status"].values()) == sum(ev["by_action"].values())
    assert sum(ev["by_status_action"].values()) == ev["total"]
    assert sum(ev["by_service_principal"].values()) == ev["total"]
    assert sum(ev["failures_by_code"].values()) == ev["by_status"]["failure"]
    assert ev["distinct_source_ids"] == len({e["sourceIdentity"]["id"] for e in sim.events})
    sc = t["scim"]
    assert sc["total"] == len(sim.scim_records) == sum(sc["by_status"].values())
    assert sc["probes"] == sum(1 for r in sim.scim_records if r["operation"] == "probe") > 0
    json.dumps(t)


# ----------------------------------------------------------------------------------- files, CLI, size
def test_pages_chain_and_hold_all_events(sim, written):
    out, paths = written
    pages = [json.loads(p.read_text(encoding="utf-8")) for p in paths["graph_pages"]]
    assert len(pages) == -(-len(sim.events) // 50) and len(pages) > 1
    for page in pages[:-1]:
        assert page["@odata.nextLink"].startswith("https://graph.microsoft.com/v1.0/auditLogs/provisioning?")
        assert "$skiptoken=" in page["@odata.nextLink"] and len(page["value"]) == 50
    assert "@odata.nextLink" not in pages[-1]
    assert len({p["@odata.nextLink"] for p in pages[:-1]}) == len(pages) - 1
    assert all(p["@odata.context"].endswith("$metadata#auditLogs/provisioning") for p in pages)
    values = [e for p in pages for e in p["value"]]
    lines = [json.loads(line) for line in paths["events"].read_text(encoding="utf-8").splitlines()]
    assert values == lines == sim.events
    scim_lines = paths["scim_audit"].read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in scim_lines] == sim.scim_records
    assert len(paths["job_snapshots"].read_text(encoding="utf-8").splitlines()) == len(sim.job_snapshots)
    assert json.loads(paths["truth"].read_text(encoding="utf-8")) == sim.truth


def test_cli(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--seed", "1", "--users", "30", "--days", "3",
                 "--page-size", "100"]) == 0
    summary = capsys.readouterr().out.strip()
    assert "\n" not in summary and "events" in summary and "SCIM requests" in summary
    assert (tmp_path / "graph" / "page-00001.json").exists() and (tmp_path / "ground-truth.json").exists()


def test_default_size_is_fast_and_large():
    began = time.perf_counter()
    sim = generate(seed=7, users=200, days=14)
    assert time.perf_counter() - began < 15
    assert len(sim.events) > 2000 and len(sim.scim_records) > len(sim.events)
    assert len(sim.truth["violations"]) >= 8 and len(sim.truth["missed_cycles"]) == 2
