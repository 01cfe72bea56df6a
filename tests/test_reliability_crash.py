"""Crash safety: SIGKILL `python -m ingest graph` and `python -m ingest scim` at random moments (fetch,
load, commit, correlation), check after every kill that the database opens and its watermarks / read
positions never run ahead of the committed data, then re-run to completion and compare the database row
by row with an uninterrupted run: nothing lost, nothing duplicated."""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests import reliability_harness as h

SEED = int(os.environ.get("PROVLENS_CRASH_SEED", "8"))
EVERY_SLICE = ("--commit-every", "0")  # one commit per slice: the most commit points to be killed between


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def tenant(tmp_path_factory):
    from simulator import generate
    from simulator.graph_server import FakeGraphServer, GraphData

    sim = generate(**h.SMALL_SIM)
    root = tmp_path_factory.mktemp("crash")
    records = sim.scim_records
    per = -(-len(records) // h.SCIM_FILES)
    paths = []
    for i in range(h.SCIM_FILES):
        path = root / f"audit-{i}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records[i * per:(i + 1) * per]), encoding="utf-8")
        paths.append(str(path))
    with FakeGraphServer(GraphData.from_simulation(sim), token=h.TOKEN) as server:
        yield {"sim": sim, "server": server, "root": root, "scim_paths": paths,
               "sps": sorted({e["servicePrincipal"]["id"] for e in sim.events})}


def _graph_truth(sim, sp: str, before: datetime) -> set[str]:
    since = _t(h.GRAPH_SINCE)
    return {e["id"] for e in sim.events if e["servicePrincipal"]["id"] == sp
            and since <= _t(e["activityDateTime"]) < before}


def _assert_graph_consistent(db: Path, sim) -> int:
    """Every ground-truth event before each scope's watermark is stored; returns the events stored."""
    if not db.exists():
        return 0
    ids = h.event_ids(db)  # also proves the killed writer left a database that opens
    assert len(ids) == len(set(ids))
    stored = set(ids)
    assert stored <= {e["id"] for e in sim.events}
    for scope, mark in h.watermarks(db).items():
        sp = scope.split("/", 1)[1]
        missing = _graph_truth(sim, sp, mark) - stored
        assert not missing, f"watermark {mark} of {scope} runs ahead of the data: {len(missing)} event(s) missing"
    return len(stored)


def test_graph_ingest_survives_sigkill_anywhere(tenant, tmp_path):
    sim, server, sps = tenant["sim"], tenant["server"], tenant["sps"]
    env = h.cli_env(PROVLENS_GRAPH_TOKEN=h.TOKEN)
    ref = tmp_path / "reference.duckdb"
    started = time.monotonic()
    done = h.run(h.graph_argv(str(ref), server.base_url, sps, extra=EVERY_SLICE), env)
    full_seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    commits = done.stderr.count('"event":"slice_committed"')
    assert commits >= 6
    want = {e["id"] for e in sim.events if _t(h.GRAPH_SINCE) <= _t(e["activityDateTime"]) < _t(h.GRAPH_UNTIL)}
    assert set(h.event_ids(ref)) == want

    rng = random.Random(SEED)
    db = tmp_path / "killed.duckdb"
    kills, attempts, phases = 0, 0, {"before any commit": 0, "between commits": 0}
    while kills < h.GRAPH_KILLS and attempts < h.GRAPH_KILLS * 3:
        attempts += 1
        argv = h.graph_argv(str(db), server.base_url, sps, extra=EVERY_SLICE)
        if attempts % 2:
            result = h.run_and_kill(argv, env, after_seconds=rng.uniform(0.2, full_seconds))
        else:
            result = h.run_and_kill(argv, env, after_events=("slice_committed", rng.randint(1, commits - 1)),
                                    jitter=rng.uniform(0.0, 0.06))
        if not result.killed:
            assert result.returncode == 0, result.stderr[-2000:]
            continue
        kills += 1
        committed = result.stderr.count('"event":"slice_committed"')
        phases["between commits" if committed else "before any commit"] += 1
        _assert_graph_consistent(db, sim)
    assert kills == h.GRAPH_KILLS, f"only {kills} of {attempts} runs were still running when killed"
    assert phases["between commits"] >= h.GRAPH_KILLS // 2

    # resumes at the watermark
    final = h.run(h.graph_argv(str(db), server.base_url, sps, since=None, extra=EVERY_SLICE), env)
    assert final.returncode == 0, final.stderr[-2000:]
    assert h.events(db) == h.events(ref)  # every id with identical raw JSON: nothing lost or duplicated
    assert h.watermarks(db) == h.watermarks(ref) == {f"default/{sp}": _t(h.GRAPH_UNTIL) for sp in sps}
    abandoned = h.query(db, "SELECT count(*) FROM ingest_runs WHERE outcome IN ('running', 'abandoned')")[0][0]
    assert abandoned >= 1  # the killed runs are visible in the run history, not silently "running" forever
    print(f"graph: {kills} kills ({phases}), {len(h.events(db))} events, 0 lost, 0 duplicated")


def _scim_lines(path: str) -> list[str]:
    return [json.loads(line)["request_id"] for line in Path(path).read_text(encoding="utf-8").splitlines()]


def _assert_scim_consistent(db: Path, paths: list[str]) -> None:
    if not db.exists():
        return
    ids = h.scim_request_ids(db)
    assert len(ids) == len(set(ids))
    stored = set(ids)
    every = {p: _scim_lines(p) for p in paths}
    assert stored <= {i for lines in every.values() for i in lines}
    for path, line_count in h.query(db, "SELECT path, line_count FROM scim_file_state"):
        missing = set(every[path][:line_count]) - stored
        assert not missing, f"read position of {path} (line {line_count}) runs ahead: {len(missing)} missing"


def test_scim_ingest_survives_sigkill_anywhere(tenant, tmp_path):
    paths = tenant["scim_paths"]
    env = h.cli_env()
    ref = tmp_path / "reference.duckdb"
    started = time.monotonic()
    done = h.run(h.scim_argv(str(ref), paths), env)
    full_seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(h.scim_request_ids(ref)) == sorted(r["request_id"] for r in tenant["sim"].scim_records)

    rng = random.Random(SEED + 1)
    db = tmp_path / "killed.duckdb"
    empty = tmp_path / "empty.duckdb"
    from ingest.store import Store

    Store.open(str(empty)).close()
    kills = attempts = 0
    while kills < h.SCIM_KILLS and attempts < h.SCIM_KILLS * 3:
        attempts += 1
        result = h.run_and_kill(h.scim_argv(str(db), paths), env, after_seconds=rng.uniform(0.3, full_seconds))
        if not result.killed:
            assert result.returncode == 0, result.stderr[-2000:]
            assert h.scim_requests(db) == h.scim_requests(ref)  # it finished the work the kills interrupted
            # Start over from an empty store: a re-run of finished work is a no-op (a stat per file) that ends
            # before any kill lands.
            db.with_name(db.name + ".wal").unlink(missing_ok=True)
            shutil.copy(empty, db)
            continue
        kills += 1
        _assert_scim_consistent(db, paths)
    assert kills == h.SCIM_KILLS, f"only {kills} of {attempts} runs were still running when killed"

    final = h.run(h.scim_argv(str(db), paths), env)
    assert final.returncode == 0, final.stderr[-2000:]
    assert h.scim_requests(db) == h.scim_requests(ref)
    states = "SELECT path, size, byte_offset, line_count FROM scim_file_state ORDER BY path"
    assert h.query(db, states) == h.query(ref, states)
    corr = "SELECT event_id, request_id, match_key, match_class FROM correlation ORDER BY ALL"
    assert h.query(db, corr) == h.query(ref, corr)
    print(f"scim: {kills} kills, {len(h.scim_requests(db))} requests, 0 lost, 0 duplicated")
