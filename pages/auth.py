"""The dashboard's sign-in gate: called first in app.py, before any data is read.

Login is off only when no secrets source exists at all, or the secrets hold no ``[auth]`` section (the
server then listens on 127.0.0.1 only; see README "Security and login"). Everything else fails closed: a
secrets file that exists but cannot be read or parsed, an ``[auth]`` section that is incomplete, a look-alike
section name (``[Auth]``, which Streamlit's login would not read), or an unknown access rule stops the app
with an error page that names the problem and shows no data.

With ``[auth]``, Streamlit's OpenID Connect login (Entra ID, ``st.login()``) is required, and
``[provlens.access]`` decides who may see data::

    [provlens.access]
    tenant_id = "<Directory (tenant) id>"   # the tid claim must equal it (required with a multi-tenant authority)
    object_ids = ["<user object id>"]       # the oid claim: immutable
    emails = ["alice@contoso.com"]          # preferred_username / upn claims (the email claim: see below)
    domains = ["contoso.com"]               # the part after the @ of those claims
    groups = ["<Entra group object id>"]    # the id token's "groups" claim (configure it in Entra)
    roles = ["ProvLens.Reader"]             # app roles (the "roles" claim)
    trust_email_claim = false               # true: the mutable "email" claim counts as an address too
    any_signed_in_user = false              # true: everyone the identity provider lets sign in

Nobody is allowed unless a rule says so. Everyone else gets a polite refusal and a sign-out button.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from pages.common import md_text

# Claims Entra sets from the directory (tenant-controlled); "email" is user-editable in some tenants.
ADDRESS_CLAIMS = ("preferred_username", "upn")
ACCESS_KEYS = {"tenant_id", "object_ids", "emails", "domains", "groups", "roles", "trust_email_claim",
               "any_signed_in_user", "provider"}
AUTH_KEYS = ("redirect_uri", "cookie_secret")
PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")
# Authorities that issue tokens for any tenant: the tid claim must then be checked.
MULTI_TENANT = {"common", "organizations", "consumers"}


class LoginConfigError(Exception):
    """The login configuration exists but cannot be trusted; the message names the problem (never a value)."""


@dataclass(frozen=True)
class LoginConfig:
    """The checked login settings: ``auth`` None means login is off."""

    auth: Mapping | None
    access: Mapping = field(default_factory=dict)
    provider: str | None = None


def _secrets_sources_exist() -> bool:
    """Whether any of Streamlit's configured secrets locations exists on disk."""
    from streamlit import config

    return any(os.path.exists(p) for p in config.get_option("secrets.files") or [])


def _read_secrets() -> dict[str, Any]:
    """All secrets as plain dicts; {} only when no secrets source exists at all."""
    from streamlit.errors import StreamlitSecretNotFoundError

    try:
        return st.secrets.to_dict()
    except StreamlitSecretNotFoundError as exc:
        if not _secrets_sources_exist():
            return {}
        raise LoginConfigError(f"the secrets file cannot be used: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - unreadable (permissions, encoding): fail closed
        raise LoginConfigError(f"the secrets file cannot be read: {type(exc).__name__}: {exc}") from None


def _refuse_look_alikes(secrets: Mapping, expected: str, where: str) -> None:
    for key in secrets:
        if isinstance(key, str) and key != expected and key.strip().lower() == expected:
            raise LoginConfigError(f"{where} has a section [{key}]; only [{expected}] (lower case) is read: "
                                   "rename it")


def _missing(section: Mapping, keys: tuple[str, ...]) -> list[str]:
    return [k for k in keys if not (isinstance(section.get(k), str) and section.get(k).strip())]


def _authority_tenant(metadata_url: str) -> str:
    """The tenant segment of an Entra metadata URL (``login.microsoftonline.com/<tenant>/v2.0/...``)."""
    match = re.match(r"https?://[^/]+/([^/]+)/", metadata_url.strip())
    return match.group(1).lower() if match else ""


def load_login_config(secrets: Mapping | None = None) -> LoginConfig:
    """Check the login settings; raises :class:`LoginConfigError` for anything that exists but is wrong."""
    secrets = _read_secrets() if secrets is None else secrets
    _refuse_look_alikes(secrets, "auth", "the secrets file")
    _refuse_look_alikes(secrets, "provlens", "the secrets file")
    provlens = secrets.get("provlens", {})
    if not isinstance(provlens, Mapping):
        raise LoginConfigError("[provlens] in the secrets file is not a table")
    _refuse_look_alikes(provlens, "access", "[provlens]")
    access = provlens.get("access", {})
    if not isinstance(access, Mapping):
        raise LoginConfigError("[provlens.access] in the secrets file is not a table")
    if "auth" not in secrets:
        return LoginConfig(None)
    auth = secrets["auth"]
    if not isinstance(auth, Mapping):
        raise LoginConfigError("[auth] in the secrets file is not a table")
    unknown = sorted(set(access) - ACCESS_KEYS)
    if unknown:
        raise LoginConfigError(f"[provlens.access] has unknown settings {', '.join(unknown)} "
                               f"(known: {', '.join(sorted(ACCESS_KEYS))})")
    if _missing(auth, AUTH_KEYS):
        raise LoginConfigError(f"[auth] lacks {', '.join(_missing(auth, AUTH_KEYS))}")
    providers = {k: v for k, v in auth.items() if isinstance(v, Mapping)}
    named = access.get("provider")
    if "client_id" in auth or not providers:
        if named:
            raise LoginConfigError(f"[provlens.access] provider = {named!r}, but [auth] is a single provider")
        provider, settings = None, auth
    else:
        provider = named if isinstance(named, str) and named else sorted(providers)[0]
        if provider not in providers:
            raise LoginConfigError(f"[provlens.access] provider = {provider!r}: no [auth.{provider}] section")
        settings = providers[provider]
    where = f"[auth.{provider}]" if provider else "[auth]"
    if _missing(settings, PROVIDER_KEYS):
        raise LoginConfigError(f"{where} lacks {', '.join(_missing(settings, PROVIDER_KEYS))}")
    if _authority_tenant(settings["server_metadata_url"]) in MULTI_TENANT and not _norm(access.get("tenant_id")):
        raise LoginConfigError(f"{where} signs in through a multi-tenant authority: set [provlens.access] "
                               "tenant_id to your Directory (tenant) id")
    return LoginConfig(auth, access, provider)


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


def user_addresses(user: Mapping, rules: Mapping | None = None) -> set[str]:
    """The addresses a user is known by: the tenant-set claims, plus ``email`` where the rules trust it."""
    claims = ADDRESS_CLAIMS + (("email",) if (rules or {}).get("trust_email_claim") is True else ())
    return {a for claim in claims for a in _norm(user.get(claim)) if "@" in a}


def is_allowed(user: Mapping, rules: Mapping) -> bool:
    """Whether a signed-in user's claims satisfy at least one allow-list rule (default: nobody). With a
    ``tenant_id`` every rule also needs the user's ``tid`` claim to equal it."""
    tenant = _norm(rules.get("tenant_id"))
    if tenant and not (_norm(user.get("tid")) & tenant):
        return False
    if rules.get("any_signed_in_user") is True:
        return True
    if _norm(user.get("oid")) & _norm(rules.get("object_ids")):
        return True
    addresses = user_addresses(user, rules)
    if addresses & _norm(rules.get("emails")):
        return True
    if {a.rsplit("@", 1)[1] for a in addresses} & {d.lstrip("@") for d in _norm(rules.get("domains"))}:
        return True
    if _norm(user.get("groups")) & _norm(rules.get("groups")):
        return True
    return bool(_norm(user.get("roles")) & _norm(rules.get("roles")))


def _current_user() -> dict:
    try:
        return dict(st.user.to_dict())
    except Exception:  # noqa: BLE001 - no user information: treat as signed out
        return {}


def _hide_page_list() -> None:
    """Replace Streamlit's list of the ``pages/`` modules in the sidebar (shown to anyone before the app
    calls ``st.navigation``) by one hidden page, so a visitor who may not see data sees no module names."""
    st.navigation([st.Page(lambda: None, title="provlens", url_path="signin", default=True)], position="hidden")


def _stop_with(draw) -> None:
    _hide_page_list()
    st.title("provlens")
    draw()
    st.stop()


def require_login() -> None:
    """Stop the script unless login is off, or the visitor is signed in and allowed."""
    try:
        config = load_login_config()
    except LoginConfigError as exc:
        problem = str(exc)[:1].upper() + str(exc)[1:]
        _stop_with(lambda: st.error(
            f"**Login is misconfigured, so no data is shown.** {problem}. Fix `.streamlit/secrets.toml` (see the "
            "README, \"Security and login\") and restart the dashboard.", icon=":material/lock:"))
        return
    if config.auth is None:
        return
    user = _current_user()
    if user.get("is_logged_in") is not True:
        def prompt():
            st.write("This dashboard shows personal data from Entra ID provisioning logs. Sign in with your "
                     "Microsoft work account to continue.")
            st.button("Sign in with Microsoft", key="auth_login", type="primary", on_click=st.login,
                      args=(config.provider,) if config.provider else ())
        _stop_with(prompt)
        return
    if not is_allowed(user, config.access):
        who = md_text(next(iter(sorted(user_addresses(user, config.access))), None)
                             or str(user.get("name") or "this account"))

        def refusal():
            st.warning(f"Sorry, {who} is signed in but not on this dashboard's access list. If you need access, "
                       "ask the team that runs provlens to add you (or a group or app role you hold).",
                       icon=":material/lock:")
            st.button("Sign out", key="auth_logout_refused", on_click=st.logout)
        _stop_with(refusal)
        return
    with st.sidebar:
        name = user.get("name") or next(iter(sorted(user_addresses(user, config.access))), "signed in")
        st.caption(f"Signed in as {md_text(str(name))}")
        st.button("Sign out", key="auth_logout", on_click=st.logout)
