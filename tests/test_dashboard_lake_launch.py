"""``provlens dashboard --lake URL``: serves the lake (the warm-up says so), builds no demo and migrates no database,
and refuses a second source (``--db`` with ``--lake``) in one line, exit 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

from bench.dashboard import _free_port
from ingest import exitcodes
from tests.conftest import ROOT, run_cli
from tests.lake_tenants import copy_into


def test_lake_and_db_together_are_refused_in_one_line(tmp_path):
    proc = run_cli("provlens", "dashboard", "--lake", str(tmp_path / "lake"), "--db", str(tmp_path / "x.duckdb"))
    assert proc.returncode == exitcodes.USAGE
    assert proc.stderr.strip().count("\n") == 0 and "--lake" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.duckdb").exists()


def test_dashboard_lake_serves_the_lake_without_building_a_demo(demo_db, tmp_path):
    lake = str(tmp_path / "lake")
    copy_into(str(demo_db), lake, "contoso")
    port = _free_port()
    default_db = tmp_path / "data" / "provlens.duckdb"  # where a demo would go (cwd = tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROVLENS_PORT": str(port), "PROVLENS_ADDRESS": "127.0.0.1",
           "PROVLENS_CACHE": str(tmp_path / "cache"), "PROVLENS_DB": "", "PROVLENS_LAKE": ""}
    log = tmp_path / "dashboard.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "provlens", "dashboard", "--lake", lake], cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as resp:
                    if resp.read() == b"ok":
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        assert "a lake" in log.read_text()  # pages/warmup.py knew it serves a lake
        assert not default_db.exists() and not (tmp_path / "data").exists()  # no demo, no migrate
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
