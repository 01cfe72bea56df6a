"""Preflight's target side against a real SCIM server: scim2-server (PyPI) started on 127.0.0.1, seeded through its
own SCIM API with an account that conflicts, an active account of a disabled user, a matched account and orphans;
read back page by page, then the findings about it (source side: hand-built, tests/preflight_cases.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ingest.preflight.findings import find, work_domains
from ingest.preflight.target import TargetError, read_users, safe_url
from tests.preflight_cases import PLANTED, Model, targets, users
from tests.scim_live import _request, _stop, _wait_port, free_port

TOKEN = "preflight-target-token-3f1c"


@pytest.fixture(scope="module")
def scim_server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "scim2_server.testserver.cli", "--port", str(port),
                             "--bearer-token", TOKEN], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, proc, "scim2-server")
        ids = {}
        for account in targets():  # seeded through its own API, as a client would
            body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": account.user_name,
                    "active": account.active, "emails": [{"value": e, "type": "work"} for e in account.emails]}
            if account.external_id is not None:
                body["externalId"] = account.external_id
            status, payload = _request(port, "POST", "/v2/Users", body, TOKEN)
            assert status == 201, (status, payload)
            ids[account.user_name] = json.loads(payload)["id"]
        yield f"http://127.0.0.1:{port}/v2", ids
    finally:
        _stop(proc)


def test_reads_every_account_page_by_page(scim_server):
    url, ids = scim_server
    got = read_users(url, TOKEN, page_size=2)  # five accounts: three pages
    want = {(t.user_name, t.external_id, t.active, t.emails) for t in targets()}
    assert {(a.user_name, a.external_id, a.active, a.emails) for a in got} == want
    assert {a.user_name: a.id for a in got} == ids
    assert len(got) == len(targets())
    port = int(url.split(":")[2].split("/")[0])  # the server pages: a page of two really holds two
    status, payload = _request(port, "GET", "/v2/Users?startIndex=1&count=2", None, TOKEN)
    assert status == 200 and len(json.loads(payload)["Resources"]) == 2


def test_findings_from_the_real_server(scim_server):
    url, ids = scim_server
    accounts = read_users(url, TOKEN, page_size=2)
    us = users()
    found = {(f.kind, f.identity) for f in find(us, Model(), accounts, domains=work_domains(us))}
    by_name = {t.id: ids[t.user_name] for t in targets()}  # the planted ids -> the server's ids
    planted = {(k, f"target:{by_name[i.removeprefix('target:')]}" if i.startswith("target:") else i)
               for k, i in PLANTED}
    assert found == planted


def test_a_refused_token_is_one_line_without_the_token(scim_server):
    url, _ = scim_server
    with pytest.raises(TargetError) as err:
        read_users(url, "wrong-" + TOKEN)
    assert "401" in str(err.value) and TOKEN not in str(err.value) and "\n" not in str(err.value)


def test_an_unreachable_server_is_one_line():
    with pytest.raises(TargetError) as err:
        read_users(f"http://user:secret@127.0.0.1:{free_port()}/scim", TOKEN, attempts=1, timeout=2)
    assert "secret" not in str(err.value) and TOKEN not in str(err.value)
    assert safe_url("https://u:p@h.example:8443/scim/v2?x=1") == "https://h.example:8443/scim/v2"
