"""The Graph request path: msgraph-sdk builds and sends each request, we take the raw bytes.

A :class:`GraphSession` owns an msgraph ``GraphRequestAdapter`` (auth provider, the SDK's middleware
pipeline, base URL). Requests are built with the SDK's request builders (``to_get_request_information``)
or from a nextLink (``with_url``) and sent through the adapter with a native response handler, so the
page arrives as bytes that DuckDB loads in bulk (the typed models are ~100x slower; DESIGN.md §1).

Retries are ours, not the SDK's ``RetryHandler`` (switched off per request with
``RetryHandlerOption(max_retries=0)``): the SDK gives up on ``Retry-After`` >= 180 s, does not read
``2.128``, does not share one wait budget across a run, and would hide the 429s we must count and pace
against. Our policy (tenacity): honour ``Retry-After`` in every form, back off exponentially on
503/504/5xx, timeouts, dropped connections, truncated or HTML bodies; stop after ``max_wait`` seconds of
waiting in total with :class:`GraphUnavailable`. 401/403 become :class:`GraphAuthError` with the
permission or licence that is missing.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import simdjson
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.native_response_handler import NativeResponseHandler
from kiota_abstractions.request_information import RequestInformation
from kiota_http.middleware.options import ResponseHandlerOption, RetryHandlerOption
from msgraph.generated.audit_logs.directory_audits.directory_audits_request_builder import DirectoryAuditsRequestBuilder
from msgraph.generated.audit_logs.provisioning.provisioning_request_builder import ProvisioningRequestBuilder
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_request_adapter import options as graph_middleware_options
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from ingest.graph.auth import AuthConfigError
from ingest.graph.log import RunLog
from ingest.graph.pacing import Pacer, RetryPolicy, parse_retry_after

PERMISSIONS = "AuditLog.Read.All and Directory.Read.All"


class GraphError(Exception):
    """Graph answered in a way we cannot continue from; the message is for a person."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class GraphAuthError(GraphError):
    """401/403 or no token could be obtained."""


class GraphUnavailable(GraphError):
    """Unreachable, failing or throttling past the retry budget."""


class GraphBadRequest(GraphError):
    """400: the server rejected the query (``$top``, ``$filter``, an expired ``$skiptoken``)."""


class GraphNotFound(GraphError):
    """404: wrong base URL, or an object (service principal) that does not exist."""


class Retryable(Exception):
    """One failed attempt that may succeed later."""

    def __init__(self, reason: str, retry_after: float | None = None, *, status: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status = status


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    throttled: int = 0  # 429 answers
    waited: float = 0.0  # seconds slept before retries (pacing not included)


def graph_error_fields(body: bytes) -> tuple[str | None, str | None]:
    """Graph's ``{"error": {"code", "message"}}`` if the body holds it."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, None
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict):
        return None, None
    code, message = err.get("code"), err.get("message")
    return (code if isinstance(code, str) else None,
            message[:300] if isinstance(message, str) else None)


def parse_lazily(body: bytes, parser: simdjson.Parser | None = None) -> Any:
    """A page parsed by simdjson: objects and arrays stay in simdjson's buffer until read, and an event's
    bytes come back with ``.mini`` without building Python dicts (a 999-event page: ~4 ms instead of
    orjson's ~16 ms to load it and dump each event again; B1). A body simdjson refuses but orjson reads
    (an integer beyond 64 bits, which orjson reads as a float) is read by orjson, as before; neither
    reading it raises ``orjson.JSONDecodeError``. ``parser`` is reused when its previous document is no
    longer referenced (simdjson refuses otherwise, and a fresh parser is used)."""
    if parser is not None:
        try:
            return parser.parse(body)
        except (ValueError, RuntimeError):
            pass  # still in use, or a body simdjson refuses: as below
    try:
        return simdjson.Parser().parse(body)
    except (ValueError, RuntimeError):
        return orjson.loads(body)


def looks_like_html(body: bytes, content_type: str) -> bool:
    head = body[:200].lstrip().lower()
    return "html" in content_type.lower() or head.startswith(b"<!doctype") or head.startswith(b"<html")


def explain_auth(status: int, code: str | None, message: str | None, what: str) -> str:
    said = f" ({code}: {message})" if code or message else ""
    if status == 401:
        return (f"Graph rejected the credentials for {what} (401{said}). The token is missing, expired or for "
                "another tenant/cloud: check --tenant-id, --client-id, the client secret or certificate "
                "(expired?), --cloud; a PROVLENS_GRAPH_TOKEN is valid for about an hour")
    licence = ("the tenant needs a Microsoft Entra ID P1 or P2 licence (free and B2C tenants get 403 on "
               "audit logs)")
    perms = (f"the app registration needs the Microsoft Graph application permissions {PERMISSIONS} with "
             "admin consent (delegated: a user in the Reports Reader role or higher)")
    if code and ("premium" in code.lower() or "b2c" in code.lower()):
        return f"Graph refused {what} (403{said}): {licence}; also {perms}"
    return f"Graph refused {what} (403{said}): {perms}; and {licence}"


class GraphSession:
    """One msgraph request adapter with our pacing and retry policy; use ``async with``."""

    def __init__(self, auth_provider: Any, base_url: str, *, pacer: Pacer, policy: RetryPolicy,
                 log: RunLog, timeout: float = 60.0):
        http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
                                 http2=base_url.startswith("https://"), follow_redirects=False,
                                 event_hooks={"request": [pacer.on_request]})
        self.http = GraphClientFactory.create_with_default_middleware(client=http,
                                                                      options=graph_middleware_options)
        self.adapter = GraphRequestAdapter(auth_provider, client=self.http)
        self.adapter.base_url = base_url.rstrip("/")
        self.client = GraphServiceClient(request_adapter=self.adapter)
        self.pacer = pacer
        self.policy = policy
        self.log = log
        self.stats = RequestStats()
        self._parser = simdjson.Parser()  # for provisioning pages, one at a time

    async def __aenter__(self) -> GraphSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    # ---------------------------------------------------------------- requests (built by the SDK)
    def provisioning_request(self, *, filter: str | None, top: int | None,
                             orderby: list[str] | None = None) -> RequestInformation:
        params = ProvisioningRequestBuilder.ProvisioningRequestBuilderGetQueryParameters(
            filter=filter, top=top, orderby=orderby)
        return self.client.audit_logs.provisioning.to_get_request_information(
            RequestConfiguration(query_parameters=params))

    def next_request(self, next_link: str) -> RequestInformation:
        return self.client.audit_logs.provisioning.with_url(next_link).to_get_request_information()

    def directory_audits_request(self, *, filter: str | None, top: int | None) -> RequestInformation:
        """``GET /auditLogs/directoryAudits`` (issue 24): the directory audit log, built by the SDK."""
        params = DirectoryAuditsRequestBuilder.DirectoryAuditsRequestBuilderGetQueryParameters(filter=filter, top=top)
        return self.client.audit_logs.directory_audits.to_get_request_information(
            RequestConfiguration(query_parameters=params))

    def directory_audits_next_request(self, next_link: str) -> RequestInformation:
        return self.client.audit_logs.directory_audits.with_url(next_link).to_get_request_information()

    def jobs_request(self, service_principal_id: str) -> RequestInformation:
        return (self.client.service_principals.by_service_principal_id(service_principal_id)
                .synchronization.jobs.to_get_request_information())

    def jobs_next_request(self, service_principal_id: str, next_link: str) -> RequestInformation:
        return (self.client.service_principals.by_service_principal_id(service_principal_id)
                .synchronization.jobs.with_url(next_link).to_get_request_information())

    # ---------------------------------------------------------------- sending
    async def get_json(self, request: RequestInformation, what: str, *, lazy: bool = False,
                       with_body: bool = False) -> Any:
        """GET ``request`` and return its JSON object, retrying per the policy. ``lazy``: a
        :func:`parse_lazily` document (for provisioning pages, whose events are staged as bytes; the caller
        drops the previous one first). ``with_body``: (document, the body's bytes)."""
        request.add_request_options([ResponseHandlerOption(NativeResponseHandler()),
                                     RetryHandlerOption(max_retries=0)])
        attempt_state = {"auth_retried": False, "connect_failures": 0}
        retrying = AsyncRetrying(retry=retry_if_exception_type(Retryable), wait=self._wait, stop=self._stop,
                                 sleep=self._sleep, before_sleep=lambda rs: self._note_retry(rs, what),
                                 reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    doc, body = await self._attempt(request, what, attempt_state, lazy)
                    return (doc, body) if with_body else doc
        except Retryable as exc:
            raise GraphUnavailable(self._give_up_message(exc, what), status=exc.status) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, request: RequestInformation, what: str, state: dict, lazy: bool) -> Any:
        await self.pacer.acquire()
        self.stats.requests += 1
        if request.headers.contains("Authorization"):
            request.headers.remove("Authorization")  # a fresh token from the provider on every attempt
        try:
            response: httpx.Response = await self.adapter.send_primitive_async(request, "bytes", None)
        except httpx.ConnectError as exc:
            state["connect_failures"] += 1
            if state["connect_failures"] >= 5:
                raise GraphUnavailable(f"cannot connect to {self.adapter.base_url} ({type(exc).__name__}: "
                                       f"{_first_line(exc)}); check --graph-url/--cloud, DNS, proxy and "
                                       "firewall") from None
            raise Retryable(f"cannot connect ({type(exc).__name__})") from None
        except httpx.TimeoutException as exc:
            raise Retryable(f"timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise Retryable(f"connection dropped ({type(exc).__name__})") from None
        except AuthConfigError:
            raise
        except Exception as exc:  # azure-identity: no token (ClientAuthenticationError, CredentialUnavailable)
            if type(exc).__module__.startswith("azure."):
                raise GraphAuthError(f"could not get a Graph token: {type(exc).__name__}: {_first_line(exc)}") \
                    from None
            raise
        finally:
            self.pacer.mark_done()  # answered or failed: counted from now on
        return self._check(response, what, state, lazy), response.content

    def _check(self, response: httpx.Response, what: str, state: dict, lazy: bool = False) -> Any:
        status = response.status_code
        body = response.content
        ctype = response.headers.get("content-type", "")
        if 200 <= status < 300:
            if looks_like_html(body, ctype):
                raise Retryable(f"an HTML page instead of JSON (HTTP {status})", status=status)
            try:
                doc = parse_lazily(body, self._parser) if lazy else orjson.loads(body)
            except orjson.JSONDecodeError:
                raise Retryable(f"truncated or invalid JSON body ({len(body)} bytes, HTTP {status})",
                                status=status) from None
            if not isinstance(doc, (dict, simdjson.Object)):
                raise Retryable(f"unexpected JSON (a {type(doc).__name__}, not an object)", status=status)
            return doc
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        code, message = graph_error_fields(body)
        if status == 429:
            self.stats.throttled += 1
            raise Retryable("throttled (429 TooManyRequests)", retry_after, status=status)
        if status in (408, 500, 502, 503, 504) or (status >= 500 and looks_like_html(body, ctype)):
            kind = "an HTML error page" if looks_like_html(body, ctype) else (code or "server error")
            raise Retryable(f"HTTP {status} ({kind})", retry_after, status=status)
        if status == 401:
            if not state["auth_retried"]:
                state["auth_retried"] = True  # an expired token: the provider may hand out a fresh one
                raise Retryable("401 Unauthorized (token expired?)", 0.0, status=status)
            raise GraphAuthError(explain_auth(401, code, message, what), status=401, code=code)
        if status == 403:
            raise GraphAuthError(explain_auth(403, code, message, what), status=403, code=code)
        if status == 404:
            raise GraphNotFound(f"{what}: 404 Not Found ({code or '-'}: {message or ''}); check --graph-url "
                                "(it must end with /v1.0 or /beta) and the service principal id",
                                status=404, code=code)
        if status == 400:
            raise GraphBadRequest(f"{what}: 400 Bad Request ({code or '-'}: {message or ''})", status=400, code=code)
        if status >= 500:
            raise Retryable(f"HTTP {status} ({code or 'server error'})", retry_after, status=status)
        raise GraphError(f"{what}: HTTP {status} ({code or '-'}: {message or ''})", status=status, code=code)

    # ---------------------------------------------------------------- retry policy
    def _wait(self, rs: RetryCallState) -> float:
        exc = rs.outcome.exception() if rs.outcome else None
        if isinstance(exc, Retryable) and exc.retry_after is not None:
            return exc.retry_after
        step = self.policy.backoff * (2 ** (rs.attempt_number - 1))
        return min(self.policy.backoff_cap, step) * (1 + random.random() * 0.2)

    def _stop(self, rs: RetryCallState) -> bool:
        if rs.attempt_number >= self.policy.max_attempts:
            return True
        return self.stats.waited + rs.upcoming_sleep > self.policy.max_wait

    async def _sleep(self, seconds: float) -> None:
        self.stats.waited += seconds
        await asyncio.sleep(seconds)

    def _note_retry(self, rs: RetryCallState, what: str) -> None:
        self.stats.retries += 1
        exc = rs.outcome.exception() if rs.outcome else None
        reason = exc.reason if isinstance(exc, Retryable) else str(exc)
        self.log.info("retry", f"{what}: {reason}; retrying in {rs.upcoming_sleep:.1f} s",
                      what=what, reason=reason, attempt=rs.attempt_number, wait_s=round(rs.upcoming_sleep, 3),
                      status=getattr(exc, "status", None))

    def _give_up_message(self, exc: Retryable, what: str) -> str:
        waited = self.stats.waited
        if exc.retry_after is not None and waited + exc.retry_after > self.policy.max_wait:
            return (f"{what}: {exc.reason}; Graph asks to wait {exc.retry_after:.0f} s more, beyond the retry "
                    f"budget (--max-wait {self.policy.max_wait:.0f} s, {waited:.0f} s already waited). "
                    "Committed data is kept; re-run later to continue")
        return (f"{what}: still failing after {self.policy.max_attempts} attempts or {waited:.0f} s of waiting "
                f"(last: {exc.reason}). Committed data is kept; re-run later to continue")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
