"""Azurite, the Azure Storage emulator (npm ``azurite``, pinned in ``.tools/package.json`` and installed by
``scripts/setup.sh dev``), started on 127.0.0.1 for the blob-source tests: a free port, data in memory.

No skip: setup installs it, so a missing Azurite is a failure that says how to install it, not a pass.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.conftest import ROOT

AZURITE = ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development account key: public, published in Azurite's README.
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_BUDGET_S = 60.0


@dataclass
class Azurite:
    url: str  # http://127.0.0.1:PORT
    process: subprocess.Popen

    @property
    def account_url(self) -> str:
        return f"{self.url}/{ACCOUNT}"

    def connection_string(self, key: str = KEY) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};"
                f"BlobEndpoint={self.account_url};")

    def service(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string())

    def container_sas_url(self, container: str, *, permission: str = "rl") -> str:
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        token = generate_container_sas(ACCOUNT, container, account_key=KEY,
                                       permission=ContainerSasPermissions.from_string(permission),
                                       expiry=datetime.now(timezone.utc) + timedelta(hours=1))
        return f"{self.account_url}/{container}?{token}"


    def account_sas_url(self) -> str:
        from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

        token = generate_account_sas(ACCOUNT, KEY, ResourceTypes(container=True, object=True),
                                     AccountSasPermissions(read=True, list=True),
                                     expiry=datetime.now(timezone.utc) + timedelta(hours=1))
        return f"{self.account_url}?{token}"


@contextmanager
def running_azurite(workdir: Path) -> Iterator[Azurite]:
    """Azurite's blob service on 127.0.0.1 (a port the system picks), stopped (and waited for) at the end."""
    if not AZURITE.exists():
        raise AssertionError(f"Azurite is not installed ({AZURITE} is missing): run `bash scripts/setup.sh dev`, "
                             "which installs Node and npm from Debian's packages and Azurite into .tools/")
    log = workdir / "azurite.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", "0",
                                 "--inMemoryPersistence", "--extentMemoryLimit", "256", "--skipApiVersionCheck",
                                 "--loose", "--disableTelemetry", "--silent"],
                                cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_BUDGET_S
        url = None
        while url is None:
            m = re.search(r"listens on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
            if m:
                url = m.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"Azurite did not start (exit {proc.poll()}):\n{log.read_text(errors='replace')}")
            else:
                time.sleep(0.05)
        yield Azurite(url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
