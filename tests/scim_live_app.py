"""The real scim2-server (PyPI) as a WSGI application for gunicorn: in-memory storage, the RFC 7643 schemas, and
one static bearer token (``SCIM_LIVE_TOKEN``), built the way its own ``scim2-server`` command builds it."""

from __future__ import annotations

import os

from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.utils import load_default_provider

_provider = load_default_provider()
_provider.config.authentication_schemes = [*(_provider.config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
app = BearerTokenApplication(InMemoryStorage(), _provider, service=ScimService(_provider, secret="live-test-cursor"),
                             bearer_tokens=[os.environ.get("SCIM_LIVE_TOKEN", "live-test-token")])
