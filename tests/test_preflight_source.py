"""Preflight's source side (issue 26) through the real msgraph-sdk over HTTP against the fake Graph server: the model
read equals the simulator's tenant model, and the effective users match the simulator's ground truth."""

from __future__ import annotations

import pytest

from ingest.graph.auth import AuthSettings
from ingest.graph.pacing import RetryPolicy
from ingest.graph.pull import PullSettings
from ingest.preflight.effective import effective_users
from ingest.preflight.expressions import Unknown
from ingest.preflight.source import (
    DEFAULT_ACCESS,
    FilterClause,
    SourceModel,
    in_scope,
    mapping_expression,
    read_source_model,
)
from simulator import generate
from simulator.graph_server import DEFAULT_TOKEN, FakeGraphServer, GraphData


@pytest.fixture(scope="module")
def sim():
    return generate(seed=11, users=60, days=3)


@pytest.fixture(scope="module")
def models(sim, tmp_path_factory):
    """Each app's SourceModel, read with 5 entries a page (so every collection pages), and the request log."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PROVLENS_GRAPH_TOKEN", DEFAULT_TOKEN)
    try:
        with FakeGraphServer(GraphData.from_simulation(sim), directory_page=5) as server:
            settings = PullSettings(db=str(tmp_path_factory.mktemp("pf") / "unused.duckdb"), base_url=server.base_url,
                                    auth=AuthSettings(method="token"), rate=None,
                                    policy=RetryPolicy(max_wait=10, backoff=0.05))
            out = {a["service_principal_id"]: read_source_model(settings, a["service_principal_id"])
                   for a in sim.truth["apps"]}
            log = list(server.log)
    finally:
        mp.undo()
    return out, log


def test_model_equals_the_tenant_model(sim, models):
    read, log = models
    directory = sim.directory
    for app in sim.truth["apps"]:
        sp = app["service_principal_id"]
        model, tenant = read[sp], directory["service_principals"][sp]
        assert model.job_id == app["job_id"]  # found through /synchronization/jobs
        assert sorted((a.principal_id, a.principal_type, a.app_role_id) for a in model.assignments) == sorted(
            (a["principalId"], a["principalType"], a["appRoleId"]) for a in tenant["assignments"])
        assigned_groups = {a["principalId"] for a in tenant["assignments"] if a["principalType"] == "Group"}
        reachable = set(assigned_groups)
        for gid in assigned_groups:
            reachable |= {m["id"] for m in directory["groups"][gid]["members"] if m["type"] == "group"}
        assert set(model.groups) == reachable
        for gid in reachable:
            assert [(m.id, m.type) for m in model.groups[gid]] == [
                (m["id"], m["type"]) for m in directory["groups"][gid]["members"]]
        expected_users = {a["principalId"] for a in tenant["assignments"] if a["principalType"] == "User"}
        for gid in reachable:
            expected_users |= {m["id"] for m in directory["groups"][gid]["members"] if m["type"] == "user"}
        assert set(model.users) == expected_users
        for uid, got in model.users.items():
            want = directory["users"][uid]
            assert got == {k: want.get(k) for k in got}
            assert {"accountEnabled", "userPrincipalName", "mail", "surname", "givenName", "userType",
                    "jobTitle"} <= set(got)
        schema = tenant["schemas"][app["job_id"]]
        user_mapping = next(om for om in schema["synchronizationRules"][0]["objectMappings"]
                            if om["sourceObjectName"] == "User")
        assert {t: m.expression for t, m in model.mappings.items()} == {
            m["targetAttributeName"]: m["source"]["expression"] for m in user_mapping["attributeMappings"]}
        assert model.matching_attributes == [("externalId", "[objectId]")]
        assert sorted(model.required_target_attributes) == ["name.familyName", "userName"]
        assert model.scoping_filters == [[FilterClause("userType", "EQUALS", ("Member",))]]
        assert model.app_roles == {r["id"]: r["value"] for r in tenant["appRoles"]}
    paged = [p for p, status in log if "$skiptoken" in p and status == 200]
    assert any("/appRoleAssignedTo" in p for p in paged) and any("/members" in p for p in paged)
    assert all(status == 200 for _, status in log)


def test_effective_users_match_the_truth(sim, models):
    read, _ = models
    org = set(sim.truth["org_domains"])
    for sp, truth in sim.truth["preflight"].items():
        users = {u.user_id: u for u in effective_users(read[sp])}
        assert sorted(users) == truth["assigned"]
        assert all(u.found for u in users.values())
        assert sorted(u.user_id for u in users.values() if u.how == "nested_only") == truth["nested_group_only"]
        assert all(u.nested_via and not u.app_role_ids for u in users.values() if u.how == "nested_only")
        assert sorted(u.user_id for u in users.values() if u.default_access_only) == truth["default_access_only"]
        assert all(u.app_role_ids == [DEFAULT_ACCESS] for u in users.values() if u.default_access_only)
        assert not [u for u in users.values() if isinstance(u.in_scope, Unknown)]
        assert sorted(u.user_id for u in users.values() if u.in_scope is False) == truth["out_of_scope"]
        assert sorted(u.user_id for u in users.values() if u.enabled is False) == truth["disabled"]
        assert {u.user_id: u.attributes["active"] for u in users.values() if u.enabled is False} == {
            uid: "False" for uid in truth["disabled"]}
        required = read[sp].required_target_attributes
        missing = {u.user_id: sorted(r for r in required if u.attributes.get(r) in (None, ""))
                   for u in users.values() if u.how != "nested_only"}
        assert {k: v for k, v in missing.items() if v} == truth["missing_required"]
        email = 'emails[type eq "work"].value'
        assert sorted(u.user_id for u in users.values()
                      if str(u.attributes[email]).rsplit("@", 1)[-1] not in org) == truth["non_work_email"]
        provisioned = [u for u in users.values()
                       if u.how != "nested_only" and u.in_scope is True and not u.default_access_only]
        by_name: dict[str, list[str]] = {}
        for u in provisioned:
            by_name.setdefault(u.attributes["userName"].lower(), []).append(u.user_id)
        assert sorted(sorted(v) for v in by_name.values() if len(v) > 1) == truth["duplicate_user_name"]
        unknown = sorted({t for u in users.values() for t, v in u.attributes.items() if isinstance(v, Unknown)})
        assert unknown == truth["unknown_attributes"]
    # every planted condition is present on the first app, so the checks above are not vacuous
    first = sim.truth["preflight"][sim.truth["apps"][0]["service_principal_id"]]
    for key in ("nested_group_only", "default_access_only", "out_of_scope", "disabled", "non_work_email",
                "duplicate_user_name", "missing_required"):
        assert first[key], key


def test_the_duplicate_truth_is_the_story_s_namesake_pair(sim):
    """The source-side duplicate the truth names is the story's planted one (a leaver's account and the namesake
    joiner: violations of kind duplicate_user_name without a pre-existing target account)."""
    ids = {u: sim.directory["users"][u]["userPrincipalName"] for u in sim.directory["users"]}
    for v in sim.truth["violations"]:
        if v["kind"] != "duplicate_user_name" or v["preexisting_target"]:
            continue
        groups = sim.truth["preflight"][v["service_principal_id"]]["duplicate_user_name"]
        assert any(v["source_id"] in g and all(ids[x].lower() == v["user_name"].lower() for x in g) for g in groups)


def test_mapping_expression_without_text():
    assert mapping_expression({"name": "mail", "type": "Attribute"}) == "[mail]"
    assert mapping_expression({"name": 'say "hi"', "type": "Constant"}) == r'"say \"hi\""'
    upn = {"key": "source", "value": {"name": "userPrincipalName", "type": "Attribute"}}
    assert mapping_expression({"name": "ToLower", "type": "Function", "parameters": [upn]}) == \
        "ToLower([userPrincipalName])"
    assert mapping_expression(None) is None


def test_scoping_operators():
    def scope(*clauses):
        return SourceModel("sp", "job", scoping_filters=[list(clauses)])
    user = {"department": "Sales", "employeeId": "1500000", "userPrincipalName": "ann@domain.com", "title": None,
            "accountEnabled": True}
    assert in_scope(scope(FilterClause("department", "EQUALS", ("Sales",))), user) is True
    assert in_scope(scope(FilterClause("department", "EQUALS", ("sales",))), user) is False  # case-sensitive
    assert in_scope(scope(FilterClause("department", "NOT_EQUALS", ("HR",))), user) is True
    assert in_scope(scope(FilterClause("title", "IS NULL")), user) is True
    assert in_scope(scope(FilterClause("title", "IS NOT NULL")), user) is False
    assert in_scope(scope(FilterClause("title", "NOT EQUALS", ("x",))), user) is False  # null: false
    assert in_scope(scope(FilterClause("userPrincipalName", "REGEX MATCH", (r".*\@domain.com",))), user) is True
    assert in_scope(scope(FilterClause("userPrincipalName", "NOT REGEX MATCH", (r".*\@domain.com",))), user) is False
    assert in_scope(scope(FilterClause("employeeId", "Greater_Than", ("1000000",))), user) is True
    assert in_scope(scope(FilterClause("accountEnabled", "IS TRUE")), user) is True
    assert in_scope(scope(FilterClause("department", "EQUALS", ("Sales",)),
                          FilterClause("employeeId", "Greater_Than_OR_EQUALS", ("2000000",))), user) is False
    two_groups = SourceModel("sp", "job", scoping_filters=[[FilterClause("department", "EQUALS", ("HR",))],
                                                           [FilterClause("department", "EQUALS", ("Sales",))]])
    assert in_scope(two_groups, user) is True  # groups are OR-ed
    unknown = in_scope(scope(FilterClause("department", "IsMemberOf", ("g",))), user)
    assert isinstance(unknown, Unknown) and "IsMemberOf" in unknown.reason
    assert in_scope(SourceModel("sp", "job"), user) is True  # no filter: everyone assigned


def test_fake_graph_directory_answers_like_graph(sim):
    import httpx

    sp = sim.truth["apps"][0]["service_principal_id"]
    with FakeGraphServer(GraphData.from_simulation(sim)) as server:
        auth = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
        base = server.base_url
        assert httpx.get(f"{base}/servicePrincipals/{sp}/appRoleAssignedTo").status_code == 401
        assert httpx.get(f"{base}/servicePrincipals/nope/appRoleAssignedTo", headers=auth).status_code == 404
        assert httpx.get(f"{base}/groups/nope/members", headers=auth).status_code == 404
        assert httpx.get(f"{base}/servicePrincipals/{sp}/synchronization/jobs/nope/schema",
                         headers=auth).status_code == 404
        uid = next(iter(sim.directory["users"]))
        one = httpx.get(f"{base}/users/{uid}", params={"$select": "surname,accountEnabled"}, headers=auth).json()
        assert set(one) == {"id", "surname", "accountEnabled"}


def test_throttled_reads_are_retried_after_retry_after(sim, tmp_path, monkeypatch):
    """The pull's retry policy: Graph's 429s (here 3 requests a second) are waited out, and the model is complete."""
    monkeypatch.setenv("PROVLENS_GRAPH_TOKEN", DEFAULT_TOKEN)
    app = sim.truth["apps"][1]
    with FakeGraphServer(GraphData.from_simulation(sim), throttle=(3, 1.0), directory_page=50) as server:
        settings = PullSettings(db=str(tmp_path / "unused.duckdb"), base_url=server.base_url,
                                auth=AuthSettings(method="token"), rate=None,
                                policy=RetryPolicy(max_wait=30, backoff=0.05))
        model = read_source_model(settings, app["service_principal_id"], app["job_id"])
        statuses = [status for _, status in server.log]
    assert 429 in statuses
    tenant = sim.directory["service_principals"][app["service_principal_id"]]
    assert len(model.assignments) == len(tenant["assignments"])
    assert sorted(u.user_id for u in effective_users(model)) == \
        sim.truth["preflight"][app["service_principal_id"]]["assigned"]


def test_an_unknown_job_is_a_clear_error(sim, tmp_path, monkeypatch):
    from ingest.graph.client import GraphNotFound

    monkeypatch.setenv("PROVLENS_GRAPH_TOKEN", DEFAULT_TOKEN)
    sp = sim.truth["apps"][0]["service_principal_id"]
    with FakeGraphServer(GraphData.from_simulation(sim)) as server:
        settings = PullSettings(db=str(tmp_path / "unused.duckdb"), base_url=server.base_url,
                                auth=AuthSettings(method="token"), rate=None, policy=RetryPolicy(max_wait=5))
        with pytest.raises(GraphNotFound) as err:
            read_source_model(settings, sp, "no-such-job")
    assert "schema of job no-such-job" in str(err.value) and DEFAULT_TOKEN not in str(err.value)
