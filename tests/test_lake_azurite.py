"""The lake on Azure Blob Storage (Azurite, tests/azurite.py), issue 28: two tenants' stores copied into one lake by
two ``python -m queries lake`` processes at the same time; afterwards each tenant's rows equal its store, with no
duplicate key. A storage that cannot be reached, or refuses the key, is one line with its exit code and no secret."""

from __future__ import annotations

import os
import subprocess

import pytest

from ingest import exitcodes
from tests.azurite import ACCOUNT, KEY, running_azurite
from tests.conftest import PY, ROOT, run_cli
from tests.lake_check import build_demo, compare, duplicate_keys, store_tenant

OPTIONS = {"azure_storage_use_emulator": "true", "azure_allow_http": "true"}


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    with running_azurite(tmp_path_factory.mktemp("azurite")) as az:
        az.service().create_container("lake")
        yield az


def azure_env(az) -> dict[str, str]:
    return {"AZURE_STORAGE_USE_EMULATOR": "true", "AZURITE_BLOB_STORAGE_URL": az.url,
            "AZURE_STORAGE_ACCOUNT_NAME": ACCOUNT, "AZURE_STORAGE_ACCOUNT_KEY": KEY}


def test_two_writers_at_once(azurite, demo_db, tmp_path, monkeypatch):
    other = build_demo(tmp_path / "other.duckdb", seed=12)  # the simulator with another seed: another tenant
    tenants = {store_tenant(demo_db): demo_db, store_tenant(other): other}
    assert len(tenants) == 2
    lake = "az://lake/provisioning"
    env = {**os.environ, **azure_env(azurite)}
    procs = [subprocess.Popen([PY, "-m", "queries", "lake", "--db", str(db), "--to", lake, "-q"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for db in tenants.values()]
    outs = [p.communicate(timeout=180) for p in procs]
    for proc, (_, err) in zip(procs, outs):
        assert proc.returncode == exitcodes.OK, err
        assert KEY not in err

    for name, value in azure_env(azurite).items():
        monkeypatch.setenv(name, value)
    for tenant, db in tenants.items():
        assert compare(db, lake, tenant, OPTIONS) == {}, tenant
        assert duplicate_keys(lake, tenant, OPTIONS) == {}, tenant


def test_storage_errors_are_one_line_without_secrets(azurite, demo_db):
    stopped = {**azure_env(azurite), "AZURITE_BLOB_STORAGE_URL": "http://127.0.0.1:9"}  # nothing listens there
    out = run_cli("queries", "lake", "--db", str(demo_db), "--to", "az://lake/x", "-q", env=stopped)
    assert out.returncode == exitcodes.UNREACHABLE, out.stderr
    assert out.stderr.startswith("error: cannot reach the lake storage") and len(out.stderr.splitlines()) == 1, \
        out.stderr
    assert KEY not in out.stderr and "Traceback" not in out.stderr, out.stderr

    wrong_key = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3Jvbmc="
    refused = run_cli("queries", "lake", "--db", str(demo_db), "--to", "az://lake/y", "-q",
                      env={**azure_env(azurite), "AZURE_STORAGE_ACCOUNT_KEY": wrong_key})
    assert refused.returncode == exitcodes.AUTH, refused.stderr
    assert len(refused.stderr.splitlines()) == 1 and wrong_key not in refused.stderr and KEY not in refused.stderr, \
        refused.stderr
