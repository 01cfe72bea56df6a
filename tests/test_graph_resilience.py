"""The Graph pull under hostile conditions: SIGKILL at random moments, secrets never persisted."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import duckdb
from azure.core.credentials import AccessToken

from ingest import exitcodes
from ingest.graph.log import RunLog
from ingest.graph.pull import pull_graph
from simulator.graph_server import FakeGraphServer, GraphData
from tests.conftest import PY, ROOT, run_cli
from tests.test_graph_pull import SINCE, UNTIL, settings, sp_ids

SECRET = "s3cr3t-Client-Secret-7f1e9b"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.known-token-9d2c"


def rows(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT id, raw::VARCHAR FROM events ORDER BY id").fetchall()
    finally:
        con.close()


def graph_args(server, db: Path) -> list[str]:
    # the provisioning pull alone, so that the kills land in its pages (the directory audit log's pull, first in a
    # run, goes through the same ScopePull commits; its re-runs and overlaps: tests/test_directory_audits.py)
    return [PY, "-m", "ingest", "graph", "--db", str(db), "--graph-url", server.base_url, "--rate", "off",
            "--since", SINCE, "--until", UNTIL, "--no-jobs", "--no-audit-logs", "--log-format", "json"]


def test_sigkill_at_random_points_then_rerun_equals_uninterrupted(sim, tmp_path):
    data = GraphData.from_simulation(sim)
    with FakeGraphServer(data, token=TOKEN) as server:
        reference = tmp_path / "ref.duckdb"
        run_cli(*graph_args(server, reference)[2:], env={"PROVLENS_GRAPH_TOKEN": TOKEN}, check=True)
        expected = rows(reference)
        assert len(expected) == sim.truth["events"]["total"]

        server.set_faults(["1:slow:delay=0.08,repeat=100000"])  # stretch the run so kills land mid-way
        db = tmp_path / "killed.duckdb"
        rng = random.Random(1234)
        env = {**os.environ, "PROVLENS_GRAPH_TOKEN": TOKEN}
        kills = 0
        for _ in range(4):
            proc = subprocess.Popen(graph_args(server, db), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.6, 2.2))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
        assert kills >= 2
        server.set_faults([])
        final = run_cli(*graph_args(server, db)[2:], env={"PROVLENS_GRAPH_TOKEN": TOKEN})
        assert final.returncode == exitcodes.OK, final.stderr
    assert rows(db) == expected
    con = duckdb.connect(str(db), read_only=True)
    outcomes = {r[0] for r in con.execute("SELECT outcome FROM ingest_runs").fetchall()}
    con.close()
    assert "abandoned" in outcomes and "success" in outcomes


class KnownSecretCredential:
    """Stands in for Microsoft's token endpoint only: it 'exchanges' a client secret for a token."""

    def __init__(self, secret: str, token: str):
        self._secret = secret
        self._token = token
        self.calls = 0

    def get_token(self, *scopes, **kwargs):
        self.calls += 1
        assert scopes == ("https://graph.microsoft.com/.default",)
        return AccessToken(self._token, int(time.time()) + 3600)


def _assert_absent(blob: bytes, where: str) -> None:
    for secret in (SECRET, TOKEN, TOKEN.split(".")[-1]):
        assert secret.encode() not in blob, f"a secret leaked into {where}"


def test_secret_and_token_never_reach_logs_database_or_exports(sim, tmp_path, monkeypatch, capsys):
    data = GraphData.from_simulation(sim)
    db = tmp_path / "s.duckdb"
    with FakeGraphServer(data, token=TOKEN) as server:
        server.set_faults(["2:401", "3:429:retry-after=0", "5:403"])  # error paths print messages too
        # 1) credential path (client secret in the environment, token endpoint mocked)
        monkeypatch.setenv("PROVLENS_CLIENT_SECRET", SECRET)
        cred = KnownSecretCredential(SECRET, TOKEN)
        out = pull_graph(settings(server, db, sp_ids(sim)[0], credential=cred), RunLog("json"))
        assert cred.calls >= 2 and out.exit_code == exitcodes.AUTH
        server.set_faults(["2:401"])
        # 2) ready token through the real CLI, json logs
        proc = run_cli("ingest", "graph", "--db", str(db), "--graph-url", server.base_url, "--rate", "off",
                       "--since", SINCE, "--until", UNTIL, "--log-format", "json",
                       env={"PROVLENS_GRAPH_TOKEN": TOKEN, "PROVLENS_CLIENT_SECRET": SECRET})
        assert proc.returncode == exitcodes.OK, proc.stderr
    captured = capsys.readouterr()
    _assert_absent((captured.out + captured.err + proc.stdout + proc.stderr).encode(), "logs")
    export = tmp_path / "events.csv"
    run_cli("queries", "export", "events", "--db", str(db), "--out", str(export), check=True)
    con = duckdb.connect(str(db))
    con.execute("CHECKPOINT")
    con.close()
    for f in tmp_path.iterdir():
        if f.is_file():
            _assert_absent(f.read_bytes(), f.name)
    assert export.stat().st_size > 0
