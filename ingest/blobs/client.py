"""The storage side of the blob source: which container, how to sign in, listing and ranged reads, and errors
that name the problem without the secret.

Sign-in, the first that applies: ``PROVLENS_BLOB_CONNECTION_STRING``, ``PROVLENS_BLOB_SAS_URL`` (a container SAS
URL, or an account SAS URL and the container's name), else the account URL (``--account-url``,
``PROVLENS_BLOB_ACCOUNT_URL`` or ``account_url`` in provlens.toml) with azure-identity's DefaultAzureCredential.
The connection string and the SAS come from the environment only, and every message shown passes :meth:`redact`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlparse, urlunparse

from ingest import exitcodes
from ingest.config import ConfigError

CONTAINER = "insights-logs-provisioninglogs"  # "insights-logs-" + the diagnostic-settings category, lower-cased
CONNECTION_STRING_ENV = "PROVLENS_BLOB_CONNECTION_STRING"
SAS_URL_ENV = "PROVLENS_BLOB_SAS_URL"
ACCOUNT_URL_ENV = "PROVLENS_BLOB_ACCOUNT_URL"
LOOPBACK = {"localhost", "127.0.0.1", "::1"}
# Whatever looks like a storage secret in a text: a SAS signature, an account key, a whole SAS in a connection string.
_SECRET_PATTERNS = re.compile(r"(?i)((?:sig|AccountKey|SharedAccessSignature|SharedAccessKey)=)[^&;\s'\"]+")


class BlobSourceError(Exception):
    """The blob source cannot go on; ``exit_code`` follows the README's table. The message holds no secret."""

    def __init__(self, message: str, exit_code: int = exitcodes.FAILED):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Listed:
    """One blob as the listing showed it."""

    name: str
    size: int
    etag: str
    creation_time: datetime | None


def _strip_query(url: str) -> str:
    parts = urlparse(url)
    return urlunparse((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", "", ""))


def _check_transport(url: str, what: str) -> None:
    parts = urlparse(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{what} is not an http(s) URL (e.g. https://<account>.blob.core.windows.net)")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        raise ConfigError(f"{what}: plain http is allowed only to this machine (credentials would travel in clear)")


class Container:
    """One container, signed in; :meth:`redact` removes the secrets of this sign-in from any text."""

    def __init__(self, container: str | None, account_url: str | None, *, retries: int = 3):
        """``container``: its name (default :data:`CONTAINER`; a container SAS names its own)."""
        from azure.storage.blob import ContainerClient, ExponentialRetry

        self._secrets: list[str] = []
        retry = ExponentialRetry(initial_backoff=2, increment_base=2, retry_total=max(0, retries))
        options = {"retry_policy": retry, "connection_timeout": 20, "read_timeout": 120}
        connection_string = os.environ.get(CONNECTION_STRING_ENV, "").strip()
        sas_url = os.environ.get(SAS_URL_ENV, "").strip()
        try:
            if connection_string:
                self._secrets += [connection_string, *re.findall(r"(?i)(?:AccountKey|SharedAccessSignature)=([^;]+)",
                                                                 connection_string)]
                self.auth = f"connection string ({CONNECTION_STRING_ENV})"
                try:
                    self.client = ContainerClient.from_connection_string(connection_string, container or CONTAINER,
                                                                         **options)
                except ValueError:
                    raise ConfigError(f"{CONNECTION_STRING_ENV} is not a storage connection string (copy it from the "
                                      "storage account's Access keys, or use a SAS URL)") from None
            elif sas_url:
                query = urlparse(sas_url).query
                self._secrets += [sas_url, query, *parse_qs(query).get("sig", [])]
                self.auth = f"SAS URL ({SAS_URL_ENV})"
                _check_transport(sas_url, SAS_URL_ENV)
                if "sig=" not in query:
                    raise ConfigError(f"{SAS_URL_ENV} has no SAS token (no sig= in its query)")
                if "sr" in parse_qs(query):  # a service SAS for one container: the container is the URL's last segment
                    named = _strip_query(sas_url).rsplit("/", 1)[-1]
                    if container and container != named:
                        raise ConfigError(f"{SAS_URL_ENV} is a SAS for container {named!r}, not {container!r}")
                    self.client = ContainerClient.from_container_url(sas_url, **options)
                else:  # an account SAS: the account URL with its token, and the container by name
                    self.client = ContainerClient(sas_url, container or CONTAINER, **options)
            elif account_url:
                _check_transport(account_url, "the account URL")
                if "sig=" in urlparse(account_url).query:
                    raise ConfigError("the account URL holds a SAS token; a SAS is a secret: put the URL in "
                                      f"{SAS_URL_ENV} (environment only), not in a flag or provlens.toml")
                from azure.identity import DefaultAzureCredential

                self.auth = "DefaultAzureCredential (azure-identity)"
                self.client = ContainerClient(_strip_query(account_url), container or CONTAINER,
                                              credential=DefaultAzureCredential(), **options)
            else:
                raise ConfigError(f"no storage account: set --account-url (or {ACCOUNT_URL_ENV}, or account_url in "
                                  f"provlens.toml) to sign in with azure-identity, or {CONNECTION_STRING_ENV} or "
                                  f"{SAS_URL_ENV} in the environment")
        except ValueError as exc:  # the SDK refused a URL or name: say so without the URL (it may hold a SAS)
            raise ConfigError(self.redact(f"the storage settings were refused: {exc}")) from None
        self.name = self.client.container_name
        self.url = _strip_query(self.client.url)  # the container's URL without any SAS: safe to store and print

    def redact(self, text: str) -> str:
        for secret in sorted(filter(None, self._secrets), key=len, reverse=True):
            text = text.replace(secret, "REDACTED")
        return _SECRET_PATTERNS.sub(r"\1REDACTED", text)

    # ------------------------------------------------------------------ reads
    def list(self, prefix: str) -> list[Listed]:
        with self._errors(f"listing {self.url}"):
            return [Listed(b.name, int(b.size or 0), str(b.etag), b.creation_time)
                    for b in self.client.list_blobs(name_starts_with=prefix or None)]

    def read(self, name: str, offset: int, length: int) -> bytes | None:
        """``length`` bytes from ``offset``; None when the blob is gone or shorter than that now (deleted or replaced
        since it was listed: the next run reads it as it then is)."""
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        if length <= 0:
            return b""
        try:
            with self._errors(f"reading {self.url}/{name}"):
                return self.client.download_blob(name, offset=offset, length=length).readall()
        except BlobSourceError as exc:
            cause = exc.__cause__
            if isinstance(cause, ResourceNotFoundError) or (
                    isinstance(cause, HttpResponseError) and cause.status_code == 416):
                return None
            raise

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """The SDK's errors as :class:`BlobSourceError`: the exit code, what to check, and no secret."""
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        def refused(exc: BaseException) -> BlobSourceError:
            return BlobSourceError(self.redact(
                f"{what}: authentication or authorisation failed ({_first_line(exc)}); the reader needs the Storage "
                "Blob Data Reader role, or a connection string / SAS with read and list rights that has not "
                "expired"), exitcodes.AUTH)

        try:
            yield
        except ClientAuthenticationError as exc:
            raise refused(exc) from exc
        except ResourceNotFoundError as exc:
            raise BlobSourceError(self.redact(
                f"{what}: not found ({_first_line(exc)}); check the account and the container name (diagnostic "
                f"settings create {CONTAINER!r} when they write their first records)"), exitcodes.FAILED) from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise BlobSourceError(self.redact(f"{what}: storage unreachable ({type(exc).__name__}: "
                                              f"{_first_line(exc)})"), exitcodes.UNREACHABLE) from exc
        except HttpResponseError as exc:
            if exc.status_code in (401, 403):
                raise refused(exc) from exc
            raise BlobSourceError(self.redact(f"{what}: storage answered {exc.status_code} ({_first_line(exc)})"),
                                  exitcodes.UNREACHABLE) from exc
        except AzureError as exc:  # anything else the SDK raises (a token it could not get, a body it could not read)
            raise BlobSourceError(self.redact(f"{what}: {type(exc).__name__}: {_first_line(exc)}"),
                                  exitcodes.FAILED) from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
