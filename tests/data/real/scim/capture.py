"""Capture the SCIM server logs in this folder: run the real scim2-server (PyPI) under gunicorn (a JSON access
log and gunicorn's default text log), behind Debian's nginx (``combined`` log) and as its own ``scim2-server``
command (wsgiref's log), send the Entra-like requests of ``tests/scim_live.py`` through each, and write the logs
plus ``requests.json``: what the client sent and got back, the reference ``tests/test_scim_real_logs.py`` checks
every ingested row against. Nothing in the logs is edited by hand.

    .venv/bin/python tests/data/real/scim/capture.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[3]))

from tests.scim_live import SERVER_TZ, nginx_binary, run_capture  # noqa: E402


def main() -> None:
    if nginx_binary() is None:
        sys.exit("nginx is not installed: scripts/setup.sh dev installs Debian's nginx-light")
    capture = run_capture(HERE)
    reference = {"server_tz": SERVER_TZ, "logs": {
        "nginx_combined": "nginx-combined.log", "gunicorn_json": "gunicorn-json.log",
        "gunicorn_text": "gunicorn-default.log", "server_own": "scim2-server-own.log"},
        "sent": capture.reference()}
    (HERE / "requests.json").write_text(json.dumps(reference, indent=1) + "\n", encoding="utf-8")
    for name in reference["logs"].values():
        print(f"{name}: {len((HERE / name).read_text(encoding='utf-8').splitlines())} lines")


if __name__ == "__main__":
    main()
