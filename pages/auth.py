"""The dashboard's sign-in gate: called first in app.py, before any data is read.

Without an ``[auth]`` section in ``.streamlit/secrets.toml`` it does nothing (the server then listens on
127.0.0.1 only; see README "Security and login"). With one, Streamlit's OpenID Connect login (Entra ID,
``st.login()``) is required, and ``[provlens.access]`` decides who may see data::

    [provlens.access]
    emails = ["alice@contoso.com"]          # exact addresses (email, preferred_username or upn claim)
    domains = ["contoso.com"]               # the part after the @ of those claims
    groups = ["<Entra group object id>"]    # the id token's "groups" claim (configure it in Entra)
    roles = ["ProvLens.Reader"]             # app roles (the "roles" claim)
    any_signed_in_user = false              # true: everyone the identity provider lets sign in

Nobody is allowed unless a rule says so. Everyone else gets a polite refusal and a sign-out button.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

EMAIL_CLAIMS = ("email", "preferred_username", "upn")


def _section(name: str) -> Mapping | None:
    try:
        value = st.secrets.get(name) if name in st.secrets else None
    except Exception:  # noqa: BLE001 - no secrets.toml at all, or an unreadable one: no login configured
        return None
    return value if isinstance(value, Mapping) else None


def auth_configured() -> bool:
    return _section("auth") is not None


def access_rules() -> Mapping:
    provlens = _section("provlens") or {}
    rules = provlens.get("access") if isinstance(provlens, Mapping) else None
    return rules if isinstance(rules, Mapping) else {}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return [str(v) for v in value]
    except TypeError:
        return [str(value)]


def _norm(values: Any) -> set[str]:
    return {v.strip().lower() for v in _as_list(values) if v.strip()}


def user_addresses(user: Mapping) -> set[str]:
    return {a for claim in EMAIL_CLAIMS for a in _norm(user.get(claim)) if "@" in a}


def is_allowed(user: Mapping, rules: Mapping) -> bool:
    """Whether a signed-in user's claims satisfy at least one allow-list rule (default: nobody)."""
    if rules.get("any_signed_in_user") is True:
        return True
    addresses = user_addresses(user)
    if addresses & _norm(rules.get("emails")):
        return True
    if {a.rsplit("@", 1)[1] for a in addresses} & {d.lstrip("@") for d in _norm(rules.get("domains"))}:
        return True
    if _norm(user.get("groups")) & _norm(rules.get("groups")):
        return True
    return bool(_norm(user.get("roles")) & _norm(rules.get("roles")))


def _provider() -> str | None:
    """``st.login()`` for a single ``[auth]`` provider; the named one for ``[auth.<name>]`` sections."""
    auth = _section("auth") or {}
    named = access_rules().get("provider")
    if isinstance(named, str) and named:
        return named
    if "client_id" in auth:
        return None
    subs = [k for k, v in auth.items() if isinstance(v, Mapping)]
    return subs[0] if subs else None


def _current_user() -> dict:
    try:
        return dict(st.user.to_dict())
    except Exception:  # noqa: BLE001 - no user information: treat as signed out
        return {}


def require_login() -> None:
    """Stop the script unless login is off, or the visitor is signed in and allowed."""
    if not auth_configured():
        return
    user = _current_user()
    provider = _provider()
    if user.get("is_logged_in") is not True:
        st.title("provlens")
        st.write("This dashboard shows personal data from Entra ID provisioning logs. Sign in with your "
                 "Microsoft work account to continue.")
        st.button("Sign in with Microsoft", key="auth_login", type="primary", on_click=st.login,
                  args=(provider,) if provider else ())
        st.stop()
    if not is_allowed(user, access_rules()):
        who = next(iter(sorted(user_addresses(user))), None) or str(user.get("name") or "this account")
        st.title("provlens")
        st.warning(f"Sorry, {who} is signed in but not on this dashboard's access list. If you need access, "
                   "ask the team that runs provlens to add you (or a group or app role you hold).",
                   icon=":material/lock:")
        st.button("Sign out", key="auth_logout_refused", on_click=st.logout)
        st.stop()
    with st.sidebar:
        name = user.get("name") or next(iter(sorted(user_addresses(user))), "signed in")
        st.caption(f"Signed in as {name}")
        st.button("Sign out", key="auth_logout", on_click=st.logout)
