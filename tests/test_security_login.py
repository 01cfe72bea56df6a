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
from queries import db as qdb
from tests.conftest import ROOT, chart_figures

AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "not-a-real-cookie-secret",
        "client_id": "00000000-0000-0000-0000-000000000001", "client_secret": "not-a-real-client-secret",
        "server_metadata_url": "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0/"
                               ".well-known/openid-configuration"}
ACCESS = {"emails": ["Alice@Contoso.com"], "domains": ["auditors.example"], "groups": ["6f1c0b6e-group"],
          "roles": ["ProvLens.Reader"]}


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
    at = _app(demo_db, monkeypatch, {"is_logged_in": True, "email": "mallory@evil.example", "name": "Mallory",
                                     "groups": ["other-group"], "roles": ["Other.Role"]})
    _shows_no_data(at)
    assert calls == []
    assert "not on this dashboard's access list" in at.warning[0].value
    assert "mallory@evil.example" in at.warning[0].value
    assert [b.label for b in at.button] == ["Sign out"]


def test_allowed_user_sees_the_dashboard(demo_db, monkeypatch, calls):
    at = _app(demo_db, monkeypatch, {"is_logged_in": True, "email": "alice@contoso.com", "name": "Alice"})
    assert not at.exception and not at.warning
    assert at.metric and calls  # the overview is drawn from the database
    assert any("Signed in as Alice" in c.value for c in at.sidebar.caption)


def test_no_auth_section_means_no_gate(demo_db, monkeypatch, calls):
    at = _app(demo_db, monkeypatch, {"email": "test@example.com"}, secrets={})
    assert not at.exception and at.metric and calls


@pytest.mark.parametrize("user,allowed", [
    ({"email": "ALICE@contoso.com"}, True),
    ({"preferred_username": "bob@Auditors.Example"}, True),  # a domain on the list
    ({"upn": "carol@contoso.com", "groups": ["6F1C0B6E-group"]}, True),
    ({"email": "dan@contoso.com", "roles": "ProvLens.Reader"}, True),
    ({"email": "eve@contoso.com"}, False),  # same tenant, not on any list
    ({"email": "alice@contoso.com.evil.example"}, False),
    ({"email": "x@notauditors.example"}, False),
    ({"name": "no address"}, False),
    ({"email": "alice@contoso.com@evil.example"}, False),
])
def test_allow_list_rules(user, allowed):
    assert is_allowed(user, ACCESS) is allowed


def test_empty_allow_list_admits_nobody_unless_told():
    assert not is_allowed({"email": "a@b.c"}, {})
    assert is_allowed({"email": "a@b.c"}, {"any_signed_in_user": True})


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
