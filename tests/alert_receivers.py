"""Real local servers that alert deliveries reach in the tests (issue 24), each on 127.0.0.1 with a free port:

- :class:`Receiver`: an HTTP(S) server that records every request (method, path, query, headers, body) and answers
  with a programmed sequence of statuses (500 then 200, ...): the generic JSON webhook (``json://``) over HTTP, the
  Teams Workflows webhook over HTTPS (Apprise's ``workflows://`` plugin only speaks https);
- a CONNECT proxy mode of the same server (:meth:`Receiver.proxy`): Apprise's Slack plugin posts to the fixed host
  ``hooks.slack.com``; with ``HTTPS_PROXY`` pointing here the proxy ends the TLS itself (a self-signed certificate,
  the target URL carries Apprise's ``verify=no``) and records the request as Slack would have received it;
- :class:`SmtpReceiver`: aiosmtpd with AUTH LOGIN/PLAIN over plain SMTP (Apprise's ``mailto://``), keeping each
  message and the credentials it was given.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed(directory: Path) -> tuple[str, str]:
    """A throwaway certificate for localhost, 127.0.0.1 and hooks.slack.com: (cert file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.DNSName("hooks.slack.com"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


@dataclass
class Request:
    method: str
    host: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class _State:
    statuses: list[int] = field(default_factory=list)  # answered in order; then 200
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_CONNECT(self) -> None:  # noqa: N802 - the proxy mode: end TLS here, then read the request inside
        tls = getattr(self.server, "tls_context", None)
        if tls is None:
            self.send_error(405)
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        self.connection = tls.wrap_socket(self.connection, server_side=True)
        self.rfile = self.connection.makefile("rb")
        self.wfile = self.connection.makefile("wb")
        self.close_connection = False
        while not self.close_connection:
            self.handle_one_request()

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        split = urlsplit(self.path)
        state: _State = self.server.state  # type: ignore[attr-defined]
        with state.lock:
            state.requests.append(Request("POST", self.headers.get("Host", ""), split.path, parse_qs(split.query),
                                          {k: v for k, v in self.headers.items()}, body))
            status = state.statuses.pop(0) if state.statuses else 200
        payload = b"ok" if status < 400 else b"failed"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()


class Receiver:
    """An HTTP server on 127.0.0.1 recording requests. ``tls=(cert, key)`` serves HTTPS; ``proxy=True`` accepts
    CONNECT and ends the tunnel's TLS with that certificate."""

    def __init__(self, *, statuses: list[int] | None = None, tls: tuple[str, str] | None = None,
                 proxy: bool = False):
        self.state = _State(statuses=list(statuses or []))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.state = self.state  # type: ignore[attr-defined]
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            if proxy:
                self.server.tls_context = context  # type: ignore[attr-defined]
            else:
                self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def requests(self) -> list[Request]:
        with self.state.lock:
            return list(self.state.requests)


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1 requiring AUTH (without TLS, so Apprise's plain ``mailto://`` logs in)."""

    def __init__(self, user: str, password: str):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list = []
        self.logins: list[tuple[str, bool]] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
                receiver.messages.append(message_from_bytes(envelope.original_content or envelope.content,
                                                            policy=policy.default))
                return "250 OK"

        def authenticate(server, session, envelope, mechanism, auth_data):
            login = auth_data.login.decode() if isinstance(auth_data.login, bytes) else auth_data.login
            secret = auth_data.password.decode() if isinstance(auth_data.password, bytes) else auth_data.password
            ok = login == user and secret == password
            receiver.logins.append((login, ok))
            return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, authenticator=authenticate,
                                     auth_required=True, auth_require_tls=False)

    def __enter__(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()
