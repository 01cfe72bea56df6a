"""Login and read-only dashboard: with [auth] in secrets nobody sees data before signing in and the
allow-list decides who may; without it the server binds to localhost; pages never change the database."""

from __future__ import annotations

import hashlib
import shutil
import tomllib

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from pages.auth import is_allowed
from pages.common import md_text
from queries import db as qdb
from tests.conftest import ROOT, chart_figures

AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "not-a-real-cookie-secret",
        "client_id": "00000000-0000-0000-0000-000000000001", "client_secret": "not-a-real-client-secret",
        "server_metadata_url": "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0/"
                               ".well-known/openid-configuration"}
ACCESS = {"emails": ["Alice@Contoso.com"], "domains": ["auditors.example"], "groups": ["6f1c0b6e-group"],
          "roles": ["ProvLens.Reader"], "object_ids": ["0b5e-oid-of-frank"]}


@pytest.fixture
def calls(monkeypatch):
    """Every page query the script asks for (counted before the cache, so cached data counts too)."""
    from pages import common

    seen: list[str] = []
    original = common.query

    def counting(name, *args, **kwargs):
        seen.append(name)
        return original(name, *args, **kwargs)

    monkeypatch.setattr(common, "query", counting)
    return seen


def _app(db, monkeypatch, user: dict, secrets: dict | None = None) -> AppTest:
    monkeypatch.setenv("PROVLENS_DB", str(db))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.secrets = {"auth": AUTH, "provlens": {"access": ACCESS}} if secrets is None else secrets
    at.user = user
    at.query_params["range"] = "all"
    return at.run()


def _shows_no_data(at: AppTest) -> None:
    assert not at.exception, at.exception
    assert not at.dataframe and not at.metric and not at.get("plotly_chart") and not chart_figures(at)


def test_signed_out_visitor_sees_only_a_sign_in_prompt(demo_db, monkeypatch, calls):
    at = _app(demo_db, monkeypatch, {"is_logged_in": False})
    _shows_no_data(at)
    assert calls == []  # no query ran at all
    assert [b.label for b in at.button] == ["Sign in with Microsoft"]


def test_signed_in_user_not_on_the_list_is_refused_politely(demo_db, monkeypatch, calls):
    at = _app(demo_db, monkeypatch, {"is_logged_in": True, "upn": "mallory@evil.example", "name": "Mallory",
                                     "groups": ["other-group"], "roles": ["Other.Role"]})
    _shows_no_data(at)
    assert calls == []
    assert "not on this dashboard's access list" in at.warning[0].value
    assert md_text("mallory@evil.example") in at.warning[0].value  # the claim is shown as literal text
    assert [b.label for b in at.button] == ["Sign out"]


def test_a_crafted_name_claim_is_shown_as_text(demo_db, monkeypatch):
    at = _app(demo_db, monkeypatch, {"is_logged_in": True, "name": "![x](http://127.0.0.2:9/x.png)"})
    assert md_text("![x](http://127.0.0.2:9/x.png)") in at.warning[0].value


def test_allowed_user_sees_the_dashboard(demo_db, monkeypatch, calls):
    at = _app(demo_db, monkeypatch, {"is_logged_in": True, "preferred_username": "alice@contoso.com",
                                     "name": "Alice"})
    assert not at.exception
    # the only warnings are the Overview's active alerts (the demo has some), none about access
    assert all(w.value.startswith("**") and "access" not in w.value for w in at.warning)
    assert at.metric and calls  # the overview is drawn from the database
    assert any("Signed in as Alice" in c.value for c in at.sidebar.caption)


def test_no_auth_section_means_no_gate(demo_db, monkeypatch, calls):
    at = _app(demo_db, monkeypatch, {"email": "test@example.com"}, secrets={})
    assert not at.exception and at.metric and calls


@pytest.mark.parametrize("user,allowed", [
    ({"preferred_username": "ALICE@contoso.com"}, True),
    ({"email": "alice@contoso.com"}, False),  # the mutable email claim is not trusted unless the rules say so
    ({"oid": "0B5E-oid-of-frank"}, True),  # the immutable object id
    ({"oid": "someone-else", "name": "Frank"}, False),
    ({"preferred_username": "bob@Auditors.Example"}, True),  # a domain on the list
    ({"upn": "carol@contoso.com", "groups": ["6F1C0B6E-group"]}, True),
    ({"upn": "dan@contoso.com", "roles": "ProvLens.Reader"}, True),
    ({"upn": "eve@contoso.com"}, False),  # same tenant, not on any list
    ({"upn": "alice@contoso.com.evil.example"}, False),
    ({"upn": "x@notauditors.example"}, False),
    ({"name": "no address"}, False),
    ({"upn": "alice@contoso.com@evil.example"}, False),
])
def test_allow_list_rules(user, allowed):
    assert is_allowed(user, ACCESS) is allowed


def test_empty_allow_list_admits_nobody_unless_told():
    assert not is_allowed({"upn": "a@b.c"}, {})
    assert is_allowed({"upn": "a@b.c"}, {"any_signed_in_user": True})


def test_email_claim_counts_only_where_the_deployment_trusts_it():
    assert not is_allowed({"email": "alice@contoso.com"}, ACCESS)
    assert is_allowed({"email": "alice@contoso.com"}, {**ACCESS, "trust_email_claim": True})


def test_tenant_id_is_required_of_every_rule():
    rules = {**ACCESS, "tenant_id": "72F988BF-tenant", "any_signed_in_user": False}
    assert is_allowed({"preferred_username": "alice@contoso.com", "tid": "72f988bf-tenant"}, rules)
    assert not is_allowed({"preferred_username": "alice@contoso.com", "tid": "other-tenant"}, rules)
    assert not is_allowed({"preferred_username": "alice@contoso.com"}, rules)  # no tid claim at all
    assert not is_allowed({"oid": "0b5e-oid-of-frank", "tid": "other-tenant"}, rules)
    assert not is_allowed({"upn": "x@y.z", "tid": "other-tenant"}, {"tenant_id": "t", "any_signed_in_user": True})


def test_without_auth_the_server_listens_on_localhost_only():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] == "127.0.0.1"
    assert '--server.address "${PROVLENS_ADDRESS:-127.0.0.1}"' in (ROOT / "scripts" / "dashboard.sh").read_text()
    example = tomllib.loads((ROOT / ".streamlit" / "secrets.toml.example").read_text(encoding="utf-8"))
    assert set(AUTH) <= set(example["auth"]) and set(ACCESS) <= set(example["provlens"]["access"])


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_page_leaves_the_database_byte_identical(demo_db, tmp_path, monkeypatch):
    db = tmp_path / "copy.duckdb"
    shutil.copy(demo_db, db)
    before = _digest(db)
    monkeypatch.setenv("PROVLENS_DB", str(db))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["range"] = "all"
    at.run()
    for page in ["cycles", "failures", "skipped", "violations", "scim", "identity", "export"]:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
    assert _digest(db) == before and not (tmp_path / "copy.duckdb.wal").exists()
    with qdb.read_connection(str(db)) as con, pytest.raises(duckdb.Error):
        con.execute("DELETE FROM events")  # the dashboard's connections are read-only


GOOD_TOML = """
[auth]
redirect_uri = "http://localhost:8501/oauth2callback"
cookie_secret = "not-a-real-cookie-secret"
client_id = "00000000-0000-0000-0000-000000000001"
client_secret = "s3cr3t-client-value"
server_metadata_url = "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration"

[provlens.access]
emails = ["alice@contoso.com"]
"""

# Each: what an operator might leave in .streamlit/secrets.toml, and a word the error page must name.
BROKEN_SECRETS = {
    "missing quote": (GOOD_TOML.replace('client_secret = "s3cr3t-client-value"', 'client_secret = "s3cr3t-client'),
                      "cannot be used"),
    "not UTF-8": (GOOD_TOML.encode() + b"\n# \xff\xfe\n", "cannot be read"),
    "section [Auth]": (GOOD_TOML.replace("[auth]", "[Auth]"), "[Auth]"),
    "section [ auth ] look-alike [AUTH]": (GOOD_TOML.replace("[auth]", "[AUTH]"), "[AUTH]"),
    "[auth] without client_secret": (GOOD_TOML.replace('client_secret = "s3cr3t-client-value"\n', ""),
                                     "client_secret"),
    "[auth] without cookie_secret": (GOOD_TOML.replace('cookie_secret = "not-a-real-cookie-secret"\n', ""),
                                     "cookie_secret"),
    "multi-tenant authority without tenant_id": (GOOD_TOML.replace("contoso.onmicrosoft.com", "common"),
                                                 "tenant_id"),
    "typo in an access rule": (GOOD_TOML.replace("emails =", "email ="), "unknown settings email"),
    "[provlens.Access] look-alike": (GOOD_TOML.replace("[provlens.access]", "[provlens.Access]"), "[Access]"),
    "[auth] is not a table": ('auth = "yes"\n', "not a table"),
}


def _app_with_secrets_files(db, monkeypatch, paths: list[str], user: dict) -> AppTest:
    """The dashboard reading its secrets the way the server does (Streamlit's parser, from these files)."""
    import streamlit as st
    from streamlit.runtime.secrets import Secrets
    from streamlit.testing.v1.util import patch_config_options

    monkeypatch.setattr(st, "secrets", Secrets())
    monkeypatch.setenv("PROVLENS_DB", str(db))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.user = user
    at.query_params["range"] = "all"
    from streamlit.runtime.secrets import secrets_singleton

    try:
        with patch_config_options({"secrets.files": paths}):
            return at.run()
    finally:  # AppTest's own login check parses Streamlit's global secrets: forget what it read from these files
        secrets_singleton._reset()


@pytest.mark.parametrize("case", sorted(BROKEN_SECRETS))
def test_broken_login_configuration_fails_closed(case, demo_db, tmp_path, monkeypatch, calls):
    content, named = BROKEN_SECRETS[case]
    secrets = tmp_path / "secrets.toml"
    secrets.write_bytes(content if isinstance(content, bytes) else content.encode())
    at = _app_with_secrets_files(demo_db, monkeypatch, [str(secrets)],
                                 {"is_logged_in": True, "preferred_username": "alice@contoso.com"})
    _shows_no_data(at)
    assert calls == []  # no query ran at all
    assert len(at.error) == 1 and "Login is misconfigured" in at.error[0].value, [e.value for e in at.error]
    assert named in at.error[0].value
    page_text = " ".join(str(el.value) for el in [*at.error, *at.markdown, *at.caption, *at.title])
    assert "s3cr3t" not in page_text and "not-a-real-cookie" not in page_text


def test_a_secrets_path_that_is_a_folder_of_the_wrong_shape_fails_closed(demo_db, tmp_path, monkeypatch, calls):
    folder = tmp_path / "secrets.toml"  # a .toml path that is a directory: unreadable as a file
    folder.mkdir()
    at = _app_with_secrets_files(demo_db, monkeypatch, [str(folder)], {"is_logged_in": False})
    _shows_no_data(at)
    assert calls == [] and "Login is misconfigured" in at.error[0].value


def test_no_secrets_file_anywhere_means_no_gate(demo_db, tmp_path, monkeypatch, calls):
    at = _app_with_secrets_files(demo_db, monkeypatch, [str(tmp_path / "absent.toml")], {"email": "x@y.z"})
    assert not at.exception and not at.error and at.metric and calls


def test_a_valid_secrets_file_gates_the_dashboard(demo_db, tmp_path, monkeypatch, calls):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(GOOD_TOML, encoding="utf-8")
    at = _app_with_secrets_files(demo_db, monkeypatch, [str(secrets)], {"is_logged_in": False})
    _shows_no_data(at)
    assert calls == [] and [b.label for b in at.button] == ["Sign in with Microsoft"]


def test_the_example_secrets_file_is_a_valid_configuration():
    from pages.auth import load_login_config

    example = tomllib.loads((ROOT / ".streamlit" / "secrets.toml.example").read_text(encoding="utf-8"))
    config = load_login_config(example)
    assert config.auth is not None and config.access["tenant_id"] == "<tenant-id>"
