"""Authentication for Graph: national clouds, azure-identity credentials and a static bearer token.

Secrets come only from the environment (``PROVLENS_CLIENT_SECRET``/``AZURE_CLIENT_SECRET``,
``PROVLENS_CERTIFICATE_PASSWORD``, ``PROVLENS_GRAPH_TOKEN``) or a credential chain, never from flags,
and no object here prints them (``repr`` is redacted).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    AuthenticationProvider,
    BaseBearerTokenAuthenticationProvider,
)

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}
SECRET_ENV = ("PROVLENS_CLIENT_SECRET", "AZURE_CLIENT_SECRET")
TOKEN_ENV = "PROVLENS_GRAPH_TOKEN"
CERT_PASSWORD_ENV = "PROVLENS_CERTIFICATE_PASSWORD"
AUTH_METHODS = ("auto", "token", "secret", "certificate", "managed-identity", "cli", "default")


@dataclass(frozen=True)
class Cloud:
    """One Microsoft cloud: where Graph lives, who issues its tokens and the scope to ask for."""

    name: str
    graph_host: str  # https://graph.microsoft.com
    authority: str  # login.microsoftonline.com

    @property
    def base_url(self) -> str:
        return f"{self.graph_host}/v1.0"

    @property
    def scope(self) -> str:
        return f"{self.graph_host}/.default"


CLOUDS: dict[str, Cloud] = {
    "public": Cloud("public", "https://graph.microsoft.com", "login.microsoftonline.com"),
    "usgov": Cloud("usgov", "https://graph.microsoft.us", "login.microsoftonline.us"),
    "usgov-dod": Cloud("usgov-dod", "https://dod-graph.microsoft.us", "login.microsoftonline.us"),
    "china": Cloud("china", "https://microsoftgraph.chinacloudapi.cn", "login.chinacloudapi.cn"),
}


class AuthConfigError(Exception):
    """Authentication is configured wrongly; the message says what to set."""


def is_loopback(url: str) -> bool:
    return (urlparse(url).hostname or "") in LOOPBACK_HOSTS


def check_base_url(url: str) -> str:
    """A Graph base URL without a trailing slash; plain http only to this machine (tokens travel)."""
    from ingest.graph.log import redact_url_credentials

    parsed = urlparse(url)
    shown = redact_url_credentials(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise AuthConfigError(f"--graph-url {shown!r} is not an http(s) URL (e.g. https://graph.microsoft.com/v1.0)")
    if parsed.scheme == "http" and not is_loopback(url):
        raise AuthConfigError(f"--graph-url {shown!r}: plain http is allowed only to localhost/127.0.0.1/::1 "
                              "(a bearer token would travel in clear text)")
    return url.rstrip("/")


class _StaticTokenSource(AccessTokenProvider):
    def __init__(self, token: str):
        self._token = token

    async def get_authorization_token(self, uri: str,
                                      additional_authentication_context: dict[str, Any] | None = None) -> str:
        parsed = urlparse(uri)
        if parsed.scheme != "https" and (parsed.hostname or "") not in LOOPBACK_HOSTS:
            raise AuthConfigError("refusing to send the bearer token over plain http to a non-local host")
        return self._token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator([])

    def __repr__(self) -> str:
        return "_StaticTokenSource(<redacted>)"


def static_token_provider(token: str) -> AuthenticationProvider:
    """An msgraph auth provider that sends a ready bearer token (``PROVLENS_GRAPH_TOKEN``)."""
    token = token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token:
        raise AuthConfigError(f"{TOKEN_ENV} is set but empty")
    return BaseBearerTokenAuthenticationProvider(_StaticTokenSource(token))


@dataclass
class AuthSettings:
    """What the command line and environment say about authentication (no secret values inside)."""

    method: str = "auto"
    tenant_id: str | None = None
    client_id: str | None = None
    certificate_path: str | None = None
    cloud: Cloud = CLOUDS["public"]


def _secret_from_env() -> str | None:
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if value:
            return value
    return None


def resolve_method(settings: AuthSettings) -> str:
    """``auto``: a ready token, else a client secret, else a certificate, else DefaultAzureCredential."""
    if settings.method != "auto":
        return settings.method
    if os.environ.get(TOKEN_ENV):
        return "token"
    if _secret_from_env() and settings.client_id:
        return "secret"
    if settings.certificate_path:
        return "certificate"
    return "default"


def build_credential(settings: AuthSettings, method: str):
    """The azure-identity credential for ``method`` (authority set for the chosen cloud)."""
    from azure.identity import (
        AzureCliCredential,
        CertificateCredential,
        ClientSecretCredential,
        DefaultAzureCredential,
        ManagedIdentityCredential,
    )

    authority = settings.cloud.authority
    if method in ("secret", "certificate") and not (settings.tenant_id and settings.client_id):
        raise AuthConfigError(f"--auth {method} needs --tenant-id and --client-id "
                              "(or PROVLENS_TENANT_ID / PROVLENS_CLIENT_ID)")
    if method == "secret":
        secret = _secret_from_env()
        if not secret:
            raise AuthConfigError("client-secret authentication needs PROVLENS_CLIENT_SECRET or "
                                  "AZURE_CLIENT_SECRET in the environment (never a flag)")
        return ClientSecretCredential(settings.tenant_id, settings.client_id, secret, authority=authority)
    if method == "certificate":
        if not settings.certificate_path or not os.path.exists(settings.certificate_path):
            raise AuthConfigError("certificate authentication needs --certificate PATH (PEM or PFX) that exists")
        password = os.environ.get(CERT_PASSWORD_ENV) or None
        return CertificateCredential(settings.tenant_id, settings.client_id, settings.certificate_path,
                                     password=password, authority=authority)
    if method == "managed-identity":
        return ManagedIdentityCredential(client_id=settings.client_id) if settings.client_id \
            else ManagedIdentityCredential()
    if method == "cli":
        return AzureCliCredential(tenant_id=settings.tenant_id)
    if method == "default":
        kwargs: dict[str, Any] = {"authority": authority}
        if settings.tenant_id:
            kwargs["additionally_allowed_tenants"] = [settings.tenant_id]
        if settings.client_id:
            kwargs["managed_identity_client_id"] = settings.client_id
        return DefaultAzureCredential(**kwargs)
    raise AuthConfigError(f"unknown authentication method {method!r} (one of {', '.join(AUTH_METHODS)})")


def build_auth_provider(settings: AuthSettings, *, credential: Any = None) -> tuple[AuthenticationProvider, str]:
    """The msgraph auth provider and a label of the method (``credential`` overrides, e.g. in tests)."""
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )

    if credential is not None:
        return AzureIdentityAuthenticationProvider(credential, scopes=[settings.cloud.scope]), "credential"
    method = resolve_method(settings)
    if method == "token":
        token = os.environ.get(TOKEN_ENV)
        if not token:
            raise AuthConfigError(f"--auth token needs {TOKEN_ENV} in the environment")
        return static_token_provider(token), "token"
    credential = build_credential(settings, method)
    return AzureIdentityAuthenticationProvider(credential, scopes=[settings.cloud.scope]), method
