"""`python -m ingest doctor` against the fake Graph server through the real msgraph-sdk over HTTP: the all-pass path
(exit 0), and every failing Graph branch (401, 403 for a missing permission, 403 for a tenant without P1/P2, 404 for
an unknown service principal or one without a job, an unreachable Graph, a wrong client secret). Only Microsoft's
token endpoint is answered in-process (tests/reliability_harness.py fake-entra). No secret or token in any output."""

from __future__ import annotations

import json
import shutil
import socket

import pytest

from ingest import exitcodes
from simulator.graph_server import FakeGraphServer, GraphData
from tests.conftest import ROOT, run_cli

TOKEN = "doctor-token-5b1e9c0d7a"
SECRET = "doctor-secret-Zx81q~Hk3"
SAMPLE = ROOT / "examples" / "mappings" / "json-access-log.sample.jsonl"
MAPPING = ROOT / "examples" / "mappings" / "json-access-log.toml"


def sp_ids(sim) -> list[str]:
    return sorted({e["servicePrincipal"]["id"] for e in sim.events})


def truth_jobs(sim, sp: str) -> int:
    return len({s["job"]["id"] for s in sim.job_snapshots if s["servicePrincipalId"].lower() == sp.lower()})


@pytest.fixture(scope="module")
def graph_data(sim):
    return GraphData.from_simulation(sim)


@pytest.fixture
def server(graph_data):
    with FakeGraphServer(graph_data, token=TOKEN) as srv:
        yield srv


def write_config(tmp_path, server_url: str, sps: list[str], *, extra_graph: str = "") -> str:
    """A provlens.toml as `ingest run` reads it: one Graph source and one SCIM source with a mapping."""
    scim = tmp_path / "scim"
    scim.mkdir(exist_ok=True)
    shutil.copy(SAMPLE, scim / "access.jsonl")
    cfg = tmp_path / "provlens.toml"
    cfg.write_text(f"""db = "{tmp_path / 'store' / 'provlens.duckdb'}"
[[sources]]
type = "graph"
graph_url = "{server_url}"
rate = "off"
service_principal_ids = {json.dumps(sps)}
{extra_graph}
[[sources]]
type = "scim"
paths = ["{scim}/*.jsonl"]
mapping = "{MAPPING}"
""", encoding="utf-8")
    return str(cfg)


def doctor(*args: str, env: dict | None = None, harness: bool = False):
    """Run the doctor as a user would; every run's output is checked for the secret and the token."""
    base = {"PROVLENS_GRAPH_TOKEN": TOKEN, "PROVLENS_CLIENT_SECRET": "", "AZURE_CLIENT_SECRET": "",
            "PROVLENS_DB": "", "PROVLENS_CONFIG": ""}
    cmd = ("tests.reliability_harness", "fake-entra", "doctor") if harness else ("ingest", "doctor")
    proc = run_cli(*cmd, *args, env={**base, **(env or {})}, timeout=120)
    for secret in (TOKEN, SECRET):
        assert secret not in proc.stdout and secret not in proc.stderr, f"{secret!r} printed"
    assert proc.stderr == "", proc.stderr  # the lines go to stdout; nothing else is said (no library warnings)
    return proc


def lines(proc) -> dict[str, str]:
    """check title -> its whole line (text format)."""
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith(("ok ", "FAIL ", "skip ")):
            title = line.split(None, 1)[1].split(":", 1)[0]
            out[title] = line
    return out


def test_all_pass_exits_0_and_reports_each_service_principals_jobs(sim, server, tmp_path):
    sps = sp_ids(sim)
    proc = doctor("--config", write_config(tmp_path, server.base_url, sps))
    assert proc.returncode == exitcodes.OK, proc.stdout + proc.stderr
    got = lines(proc)
    assert len(got) == 14
    not_ok = {t: line for t, line in got.items() if not line.startswith("ok ")}
    assert list(not_ok) == ["alert targets"] and "skipped: " in not_ok["alert targets"]
    assert proc.stdout.strip().splitlines()[-1] == "doctor: 13 ok, 0 failed, 1 not run (exit 0)"
    for sp in sps:
        assert f"{sp}: {truth_jobs(sim, sp)} job(s)" in got["service principals"]
    assert "1 file(s) readable in 1 scim source(s)" in got["SCIM trail paths"]
    assert str(MAPPING) in got["mapping files"]
    # the provisioning probe and each service principal's jobs went over HTTP to the fake Graph
    paths = [p for p, _ in server.log]
    assert any("/auditLogs/provisioning" in p for p in paths)
    assert {sp for sp in sps if any(f"/servicePrincipals/{sp}/synchronization/jobs" in p for p in paths)} == set(sps)


def test_json_lines_parse_and_match_the_text_run(sim, server, tmp_path):
    cfg = write_config(tmp_path, server.base_url, sp_ids(sim)[:1])
    proc = doctor("--config", cfg, "--format", "json")
    assert proc.returncode == exitcodes.OK, proc.stdout
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    summary = rows.pop()["summary"]
    assert [r["title"] for r in rows] == list(lines(doctor("--config", cfg)))
    assert summary == {"ok": sum(r["status"] == "ok" for r in rows), "failed": 0,
                       "not_run": sum(r["status"] == "skip" for r in rows), "exit_code": 0}
    assert all(r["exit_code"] == 0 and r["detail"] for r in rows)


@pytest.mark.parametrize("how", ["401 fault", "wrong token"])
def test_401_fails_the_token_check_and_stops_the_graph_checks(sim, server, tmp_path, how):
    env = {}
    if how == "401 fault":
        server.set_faults(["1:401:repeat=10"])
    else:
        env["PROVLENS_GRAPH_TOKEN"] = "not-the-token-the-tenant-issued"
    proc = doctor("--config", write_config(tmp_path, server.base_url, sp_ids(sim)), "--format", "json", env=env)
    assert proc.returncode == exitcodes.AUTH
    rows = {r["check"]: r for r in map(json.loads, proc.stdout.splitlines()[:-1])}
    assert rows["credential"]["status"] == "ok" and rows["reachability"]["status"] == "ok"
    assert rows["token"]["status"] == "fail" and "401" in rows["token"]["detail"]
    assert "--tenant-id" in rows["token"]["detail"]
    for later in ("auditlog", "licence", "service_principals", "jobs"):
        assert rows[later] == {**rows[later], "status": "skip", "detail": "not run: needs token accepted"}
    assert rows["db_writable"]["status"] == "ok"  # the local checks still run


@pytest.mark.parametrize("fault, code", [
    ("1:403-permission:repeat=10", "Authorization_RequestDenied"),  # "Insufficient privileges ..."
    # another reading: Graph names the missing permission itself
    ("1:403-permission:repeat=10,code=Authentication_MSGraphPermissionMissing,"
     "message=Calling principal does not have required MSGraph permissions AuditLog.Read.All",
     "Authentication_MSGraphPermissionMissing"),
])
def test_403_permission_names_auditlog_read_all(sim, server, tmp_path, fault, code):
    server.set_faults([fault])
    proc = doctor("--config", write_config(tmp_path, server.base_url, sp_ids(sim)))
    assert proc.returncode == exitcodes.AUTH
    got = lines(proc)
    assert got["AuditLog.Read.All"].startswith("FAIL ")
    assert "add the Microsoft Graph application permission AuditLog.Read.All" in got["AuditLog.Read.All"]
    assert f"Graph said 403 {code}" in got["AuditLog.Read.All"]
    assert got["Entra ID P1/P2 licence"].endswith("not run: needs AuditLog.Read.All")
    assert got["service principals"].startswith("ok ")  # the jobs endpoint was not refused


@pytest.mark.parametrize("fault", [
    "1:403-licence:repeat=10",  # Graph's code for a tenant without P1/P2
    "1:403-licence:repeat=10,code=Forbidden",  # another reading: only the message says it
])
def test_403_licence_says_p1_p2_not_permission(sim, server, tmp_path, fault):
    server.set_faults([fault])
    proc = doctor("--config", write_config(tmp_path, server.base_url, sp_ids(sim)))
    assert proc.returncode == exitcodes.AUTH
    got = lines(proc)
    assert got["Entra ID P1/P2 licence"].startswith("FAIL ") and "P1 or P2" in got["Entra ID P1/P2 licence"]
    assert got["AuditLog.Read.All"].startswith("skip ") and "not run" in got["AuditLog.Read.All"]


def test_bare_403_gives_both_fixes(sim, server, tmp_path):
    server.set_faults(["1:403-licence:repeat=10,code=Forbidden,message="])
    proc = doctor("--config", write_config(tmp_path, server.base_url, sp_ids(sim)))
    assert proc.returncode == exitcodes.AUTH
    line = lines(proc)["AuditLog.Read.All"]
    assert line.startswith("FAIL ") and "AuditLog.Read.All" in line and "P1 or P2" in line


def test_403_on_jobs_names_synchronization_read_all(sim, server, tmp_path):
    sps = sp_ids(sim)
    server.set_faults(["1:403-permission:on=jobs,repeat=50"])
    proc = doctor("--config", write_config(tmp_path, server.base_url, sps))
    assert proc.returncode == exitcodes.AUTH
    got = lines(proc)
    assert got["AuditLog.Read.All"].startswith("ok ") and got["Entra ID P1/P2 licence"].startswith("ok ")
    assert got["Synchronization.Read.All"].startswith("FAIL ")
    assert "add the Microsoft Graph application permission Synchronization.Read.All" in got["Synchronization.Read.All"]
    assert "not run: needs Synchronization.Read.All" in got["service principals"]


def test_404_unknown_service_principal(sim, server, tmp_path):
    known = sp_ids(sim)[0]
    unknown = "00000000-1111-2222-3333-444444444444"
    assert unknown not in sp_ids(sim)
    proc = doctor("--config", write_config(tmp_path, server.base_url, [known, unknown]))
    assert proc.returncode == exitcodes.USAGE
    line = lines(proc)["service principals"]
    assert line.startswith("FAIL ") and f"{unknown} is not a service principal" in line and "Object ID" in line
    assert known not in line.split(":", 1)[1]  # only the wrong id is named in the fix
    assert lines(proc)["Synchronization.Read.All"].startswith("ok ")  # the known one's jobs were read


def test_404_fault_on_jobs(sim, server, tmp_path):
    server.set_faults(["1:404:on=jobs,repeat=50"])
    proc = doctor("--config", write_config(tmp_path, server.base_url, sp_ids(sim)[:1]))
    assert proc.returncode == exitcodes.USAGE
    assert "is not a service principal" in lines(proc)["service principals"]


def test_service_principal_without_a_provisioning_job(sim, tmp_path):
    sp, other = sp_ids(sim)[:2]
    data = GraphData.from_simulation(sim)
    data.jobs[sp.lower()] = {}  # the app exists (it has events) but no provisioning job is set up
    with FakeGraphServer(data, token=TOKEN) as srv:
        proc = doctor("--config", write_config(tmp_path, srv.base_url, [sp, other]))
    assert proc.returncode == exitcodes.USAGE
    line = lines(proc)["service principals"]
    assert line.startswith("FAIL ") and f"{sp} has no provisioning job" in line and other not in line


def test_unreachable_graph(sim, tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = doctor("--config", write_config(tmp_path, f"http://127.0.0.1:{port}/v1.0", sp_ids(sim)), "--max-wait", "1")
    assert proc.returncode == exitcodes.UNREACHABLE
    got = lines(proc)
    assert got["Graph reachable"].startswith("FAIL ") and "--graph-url" in got["Graph reachable"]
    assert got["token accepted"].endswith("not run: needs Graph reachable")


def test_client_secret_through_the_token_endpoint(sim, server, tmp_path):
    """azure-identity's ClientSecretCredential and MSAL run unchanged; the token endpoint answers in-process and
    issues the token the fake Graph accepts only for the right secret."""
    log = tmp_path / "entra.log"
    cfg = write_config(tmp_path, server.base_url, sp_ids(sim)[:1],
                       extra_graph='auth = "secret"\ntenant_id = "contoso.onmicrosoft.com"\nclient_id = '
                                   '"11111111-2222-3333-4444-555555555555"')
    env = {"PROVLENS_GRAPH_TOKEN": "", "PROVLENS_CLIENT_SECRET": SECRET, "PROVLENS_TEST_ISSUED_TOKEN": TOKEN,
           "PROVLENS_TEST_EXPECTED_SECRET": SECRET, "PROVLENS_TEST_ENTRA_LOG": str(log)}
    good = doctor("--config", cfg, env=env, harness=True)
    assert good.returncode == exitcodes.OK, good.stdout + good.stderr
    assert "secret ok" in log.read_text() and "WRONG" not in log.read_text()
    assert lines(good)["credential"].startswith("ok ") and "secret credential" in lines(good)["credential"]

    wrong = SECRET[::-1]
    bad = doctor("--config", cfg, env={**env, "PROVLENS_CLIENT_SECRET": wrong}, harness=True)
    assert wrong not in bad.stdout + bad.stderr
    assert bad.returncode == exitcodes.AUTH
    got = lines(bad)
    assert got["credential"].startswith("FAIL ") and "client secret" in got["credential"]
    assert got["Graph reachable"].endswith("not run: needs credential")


def jwt(claims: dict) -> str:
    """A token shaped like Entra's (header.payload.signature, unsigned here: the fake Graph compares it as text)."""
    import base64

    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_licence_error_with_the_tokens_roles_still_judges_the_permission(sim, graph_data, tmp_path):
    """Graph answers the licence 403 first; the roles in the token then say whether AuditLog.Read.All is granted."""
    import time

    exp = int(time.time()) + 3600
    for roles, verdict in ((["Directory.Read.All"], "FAIL "), (["AuditLog.Read.All", "Directory.Read.All"], "ok ")):
        token = jwt({"roles": roles, "exp": exp})
        with FakeGraphServer(graph_data, token=token, faults=["1:403-licence:repeat=10"]) as srv:
            proc = doctor("--config", write_config(tmp_path, srv.base_url, sp_ids(sim)[:1]),
                          env={"PROVLENS_GRAPH_TOKEN": token})
        assert token not in proc.stdout + proc.stderr
        got = lines(proc)
        assert got["AuditLog.Read.All"].startswith(verdict) and "roles" in got["AuditLog.Read.All"]
        assert got["Entra ID P1/P2 licence"].startswith("FAIL ")
        assert proc.returncode == exitcodes.AUTH


def test_expired_token_fails_the_credential_check(sim, graph_data, tmp_path):
    import time

    token = jwt({"roles": ["AuditLog.Read.All"], "exp": int(time.time()) - 60})
    with FakeGraphServer(graph_data, token=token) as srv:
        proc = doctor("--config", write_config(tmp_path, srv.base_url, sp_ids(sim)[:1]),
                      env={"PROVLENS_GRAPH_TOKEN": token})
        assert not srv.log  # nothing was sent with a token known to be expired
    assert token not in proc.stdout + proc.stderr
    assert proc.returncode == exitcodes.AUTH
    got = lines(proc)
    assert got["credential"].startswith("FAIL ") and "expired at" in got["credential"]
    assert got["Graph reachable"].endswith("not run: needs credential")


def test_graph_failing_past_the_retry_budget_is_unreachable(sim, server, tmp_path):
    server.set_faults(["1:503:repeat=20"])
    proc = doctor("--config", write_config(tmp_path, server.base_url, sp_ids(sim)[:1]), "--max-wait", "1")
    assert proc.returncode == exitcodes.UNREACHABLE
    got = lines(proc)
    assert got["Graph reachable"].startswith("FAIL ") and "503" in got["Graph reachable"]
    assert got["AuditLog.Read.All"].endswith("not run: needs Graph reachable")


def test_without_service_principal_ids_the_job_permission_is_checked_on_an_app_from_the_log(graph_data, server,
                                                                                            tmp_path):
    proc = doctor("--config", write_config(tmp_path, server.base_url, []))
    assert proc.returncode == exitcodes.OK, proc.stdout
    got = lines(proc)
    assert "skipped: no service principal ids configured" in got["service principals"]
    first = graph_data.events[0]["servicePrincipal"]["id"]  # the fake serves events oldest first
    assert got["Synchronization.Read.All"].startswith("ok ") and first in got["Synchronization.Read.All"]
    assert [p for p, _ in server.log if "/synchronization/jobs" in p] == [f"/v1.0/servicePrincipals/{first}"
                                                                          "/synchronization/jobs"]
