"""A lake writer killed with SIGKILL (issue 28) loses and duplicates nothing: every table's committed content is
either what it was before the copy or the store's new content, never a part of a day, and a re-run completes the
copy. Once with a child paused inside a Delta write (deterministic), once with the real command killed as soon as
its first new data file appears."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ingest import exitcodes
from tests.conftest import PY, ROOT, run_cli
from tests.lake_check import TABLES, compare, duplicate_keys, grow, store_tenant

DEADLINE_S = 60


def state_of_each_table(before: Path, after: Path, lake: str, tenant: str) -> dict[str, str]:
    """Per table: "before", "after" (its lake rows equal that store's), or what is wrong."""
    old, new = compare(before, lake, tenant), compare(after, lake, tenant)
    out = {}
    for table in TABLES:
        bad_old = [v for k, v in old.items() if k.split(".")[0] == table]
        bad_new = [v for k, v in new.items() if k.split(".")[0] == table]
        out[table] = "after" if not bad_new else "before" if not bad_old else f"neither: {bad_new}"
    return out


def prepared(demo_db: Path, tmp_path: Path) -> tuple[Path, Path, Path, str]:
    """(before store, after store, lake) with the lake holding the before store's copy."""
    before, after, lake = tmp_path / "before.duckdb", tmp_path / "after.duckdb", tmp_path / "lake"
    shutil.copy(demo_db, before)
    from ingest.lake.command import copy_db

    copy_db(str(before), str(lake), quiet=True)
    grow(before, after, tmp_path)
    return before, after, lake, store_tenant(before)


def finish_and_check(before: Path, after: Path, lake: Path, tenant: str) -> dict[str, str]:
    states = state_of_each_table(before, after, str(lake), tenant)
    assert all(s in ("before", "after") for s in states.values()), states
    assert duplicate_keys(str(lake), tenant) == {}
    rerun = run_cli("queries", "lake", "--db", str(after), "--to", str(lake), "-q")
    assert rerun.returncode == exitcodes.OK, rerun.stderr
    assert compare(after, str(lake), tenant) == {}
    assert duplicate_keys(str(lake), tenant) == {}
    return states


def test_killed_inside_a_delta_write(demo_db, tmp_path):
    before, after, lake, tenant = prepared(demo_db, tmp_path)
    marker = tmp_path / "paused"
    child = subprocess.Popen([PY, "-m", "tests.lake_kill_child", str(after), str(lake), str(marker), "2"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + DEADLINE_S
    while not marker.exists():
        assert child.poll() is None, child.stderr.read()
        assert time.monotonic() < deadline, "the child never reached its second table"
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    states = finish_and_check(before, after, lake, tenant)
    # the first table with changes was committed, the second was being written: the kill fell mid-copy
    assert states["events"] == "after"
    assert "before" in states.values(), states


def test_real_command_killed_when_its_first_file_appears(demo_db, tmp_path):
    before, after, lake, tenant = prepared(demo_db, tmp_path)
    known = {p for p in lake.rglob("*.parquet")}
    child = subprocess.Popen([PY, "-m", "queries", "lake", "--db", str(after), "--to", str(lake), "-q"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + DEADLINE_S
    while not ({p for p in lake.rglob("*.parquet")} - known):
        assert child.poll() is None, child.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.002)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    states = finish_and_check(before, after, lake, tenant)
    print("states after the kill:", states)
