"""Real SCIM servers on 127.0.0.1 writing their real access logs, and Entra-like traffic sent through them.

:func:`run_capture` starts the real scim2-server (PyPI) under gunicorn twice (one instance writing a JSON access
log through ``--access-logformat``, one writing gunicorn's default text format), Debian's nginx (when installed)
with the ``combined`` log in front of the JSON one, and scim2-server's own ``scim2-server`` command (its wsgiref
log on stderr); sends the same Entra-like requests (reference scim-audit-trail.md §1: probe, lookup, create,
update, a 409 duplicate, disable, delete, a 401) through each; stops them (which flushes the logs) and returns
what the client sent and received: the reference the ingested rows are checked against. Used by the live test
and by ``tests/data/real/scim/capture.py`` (which committed one run's logs).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "live-test-token"
# A fixed UTC-5 zone (POSIX TZ, no tzdata needed): gunicorn and nginx write local times with a -0500 offset, so
# the ingest's conversion to UTC is exercised, not assumed. scim2-server's own (wsgiref) log writes no offset: it
# runs in UTC, the zone examples/mappings/wsgiref-access-log.toml assumes.
SERVER_TZ = "XYZ+5"
# gunicorn's JSON access log: our field names, so no mapping is needed; no client sends X-Request-Id, so
# request_id is gunicorn's placeholder '-' on every line (issue 22).
GUNICORN_JSON_FORMAT = ('{"ts":"%(t)s","request_id":"%({x-request-id}i)s","method":"%(m)s","path":"%(U)s",'
                        '"query":"%(q)s","status":"%(s)s","duration_ms":"%(M)s","client_ip":"%(h)s",'
                        '"user_agent":"%(a)s"}')
USER_AGENT = "Microsoft Azure AD SCIM provisioning 1.0.0"  # the hint in Microsoft's docs (reference §1)


@dataclass
class Sent:
    """One request as the client sent it and the answer it got (times in epoch seconds, UTC)."""

    method: str
    path: str
    query: str | None
    status: int
    t_before: float
    t_after: float
    user_name: str | None = None  # the userName a filter asked for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


def _gunicorn(port: int, logfile: Path, fmt: str | None, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
           "--access-logfile", str(logfile), "--error-logfile", str(logfile.with_suffix(".err"))]
    if fmt:
        cmd += ["--access-logformat", fmt]
    return subprocess.Popen([*cmd, "tests.scim_live_app:app"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _nginx(binary: str, port: int, upstream: int, workdir: Path, logfile: Path, env: dict) -> subprocess.Popen:
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {logfile} combined;
    client_body_temp_path {workdir}/tmp/body;
    proxy_temp_path {workdir}/tmp/proxy;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host $host;
        }}
    }}
}}
""")
    return subprocess.Popen([binary, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(conf)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _request(port: int, method: str, target: str, body: dict | None, token: str = TOKEN) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"User-Agent": USER_AGENT, "Authorization": f"Bearer {token}", "Accept": "application/scim+json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/scim+json"
    try:
        conn.request(method, target, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def entra_like_traffic(port: int) -> list[Sent]:
    """Send one Entra-like sequence (reference scim-audit-trail.md §1) to a server; what was sent, in order."""
    sent: list[Sent] = []
    user = f"ann.{uuid.uuid4().hex[:6]}@contoso.com"
    external = str(uuid.uuid4())
    create = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "externalId": external, "userName": user,
              "active": True, "name": {"givenName": "Ann", "familyName": "Lee"},
              "emails": [{"type": "work", "primary": True, "value": user}], "roles": []}

    def send(method: str, path: str, query: str | None = None, body: dict | None = None, *,
             token: str = TOKEN, user_name: str | None = None) -> bytes:
        target = path + (f"?{query}" if query else "")
        before = time.time()
        status, payload = _request(port, method, target, body, token)
        sent.append(Sent(method, path, query, status, before, time.time(), user_name))
        return payload

    def by_name(name: str) -> str:
        return "filter=" + quote(f'userName eq "{name}"', safe="")

    probe = str(uuid.uuid4())
    send("GET", "/v2/Users", by_name(probe), user_name=probe)  # test connection: a random GUID
    send("GET", "/v2/Users", by_name(user), user_name=user)  # match: none yet
    uid = json.loads(send("POST", "/v2/Users", body=create))["id"]  # create
    send("GET", "/v2/Users", by_name(user), user_name=user)  # match: found
    send("PATCH", f"/v2/Users/{uid}", body={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                             "Operations": [{"op": "Replace", "path": "name.familyName",
                                                             "value": "Lee-Smith"}]})
    send("POST", "/v2/Users", body=create)  # the same userName again: 409 uniqueness
    send("PATCH", f"/v2/Users/{uid}", body={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                             "Operations": [{"op": "Replace", "path": "active", "value": False}]})
    send("GET", "/v2/Users", by_name(user), token="expired-token", user_name=user)  # 401
    send("DELETE", f"/v2/Users/{uid}")
    send("GET", f"/v2/Users/{uid}")  # gone: 404
    return sent


@dataclass
class Capture:
    """What one run wrote: the log files (absent when that server could not run) and what was sent to each."""

    gunicorn_json: Path
    gunicorn_text: Path
    nginx_combined: Path | None
    server_own: Path
    sent: dict[str, list[Sent]]

    def reference(self) -> dict[str, list[dict]]:
        return {name: [asdict(s) for s in sent] for name, sent in self.sent.items()}


def run_capture(outdir: Path, *, with_nginx: bool = True, with_own_log: bool = True) -> Capture:
    """Start the servers, send the traffic, stop them; the logs land in ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TZ": SERVER_TZ, "SCIM_LIVE_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONPATH", None)
    json_log, text_log = outdir / "gunicorn-json.log", outdir / "gunicorn-default.log"
    own_log = outdir / "scim2-server-own.log"
    ports = {"json": free_port(), "text": free_port()}
    procs: list[subprocess.Popen] = []
    nginx_log = None
    sent: dict[str, list[Sent]] = {}
    nginx = nginx_binary() if with_nginx else None
    try:
        procs.append(g_json := _gunicorn(ports["json"], json_log, GUNICORN_JSON_FORMAT, env))
        procs.append(g_text := _gunicorn(ports["text"], text_log, None, env))
        if with_own_log:
            ports["own"] = free_port()
            own_fh = own_log.open("wb")
            procs.append(own := subprocess.Popen(
                [sys.executable, "-m", "scim2_server.testserver.cli", "--port", str(ports["own"]),
                 "--bearer-token", TOKEN], env={**env, "TZ": "UTC"}, stdout=subprocess.DEVNULL, stderr=own_fh))
            own_fh.close()
        if nginx:
            ports["nginx"] = free_port()
            nginx_log = outdir / "nginx-combined.log"
            procs.append(ngx := _nginx(nginx, ports["nginx"], ports["json"], outdir / ".nginx", nginx_log, env))
        _wait_port(ports["json"], g_json, "gunicorn (JSON log)")
        _wait_port(ports["text"], g_text, "gunicorn (default log)")
        if with_own_log:
            _wait_port(ports["own"], own, "scim2-server")
        if nginx:
            _wait_port(ports["nginx"], ngx, "nginx")
            sent["nginx_combined"] = sent["gunicorn_json"] = entra_like_traffic(ports["nginx"])
        else:
            sent["gunicorn_json"] = entra_like_traffic(ports["json"])
        sent["gunicorn_text"] = entra_like_traffic(ports["text"])
        if with_own_log:
            sent["server_own"] = entra_like_traffic(ports["own"])
    finally:
        for proc in reversed(procs):  # nginx first (graceful quit flushes its log), then the servers
            _stop(proc, signal.SIGQUIT if nginx and proc is procs[-1] else signal.SIGINT)
        shutil.rmtree(outdir / ".nginx", ignore_errors=True)
        for extra in (json_log.with_suffix(".err"), text_log.with_suffix(".err")):
            extra.unlink(missing_ok=True)
    return Capture(json_log, text_log, nginx_log, own_log, sent)
