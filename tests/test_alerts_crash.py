"""A SIGKILL of a real ``python -m`` process between "recorded" and "sent" (issue 24). provlens delivers at least
once (README, "Get alerted"): killed after recording and before sending, the next run sends each notification
exactly once; killed after a target accepted one and before it was marked sent, the next run sends that one again
(the documented duplicate, at most one per crash) and every other once; a third run sends nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from ingest import exitcodes
from tests.alert_receivers import Receiver

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)


def _alerts(tmp_path: Path) -> Path:
    items = [{"rule": rule, "severity": "critical", "key": f"sp-1/{rule}", "app": "Leapsome", "job": "job-1",
              "first_seen": (T0 - timedelta(hours=1)).isoformat(), "last_seen": T0.isoformat(),
              "message": f"{rule} on Leapsome", "action": "look", "identities": 3, "url": f"/cycles?rule={rule}"}
             for rule in ("quarantine", "credential")]
    path = tmp_path / "alerts.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


def _start(tmp_path: Path, receiver: Receiver, pause: str | None) -> subprocess.Popen:
    config = tmp_path / "provlens.toml"
    config.write_text('[alerts]\nretry_wait_seconds = 0\n[[alerts.targets]]\nname = "ops"\n'
                      'url_env = "PROVLENS_CRASH_HOOK"\n', encoding="utf-8")
    env = {**os.environ, "PROVLENS_CONFIG": str(config),
           "PROVLENS_CRASH_HOOK": f"json://127.0.0.1:{receiver.port}/hook"}
    env.pop("PROVLENS_ALERTS_TEST_PAUSE", None)
    if pause:
        env["PROVLENS_ALERTS_TEST_PAUSE"] = f"{pause}:120"
    return subprocess.Popen([sys.executable, "-m", "tests.alerts_child", str(tmp_path / "store.duckdb"),
                             str(_alerts(tmp_path)), T0.isoformat()], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


def _kill_at_pause(proc: subprocess.Popen, point: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if f"alerts: test pause {point}" in line:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert proc.returncode == -signal.SIGKILL
            return
        if not line and proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"the child never reached the pause {point}")


def _run(tmp_path, receiver) -> int:
    proc = _start(tmp_path, receiver, None)
    proc.communicate(timeout=120)
    return proc.returncode


def _statuses(tmp_path) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "store.duckdb"), read_only=True) as con:
        return con.execute("SELECT a.rule, d.kind, d.status FROM alert_deliveries d JOIN alerts a USING "
                           "(episode_id) ORDER BY d.delivery_id").fetchall()


def _rules_received(receiver: Receiver) -> list[str]:
    return [r.json()["title"].split("] ")[1].split(" on")[0] for r in receiver.requests]


def test_killed_after_recording_before_sending(tmp_path):
    with Receiver() as receiver:
        _kill_at_pause(_start(tmp_path, receiver, "before_send"), "before_send")
        assert receiver.requests == []
        assert _statuses(tmp_path) == [("quarantine", "fired", "pending"), ("credential", "fired", "pending")]
        assert _run(tmp_path, receiver) == exitcodes.OK
        assert _rules_received(receiver) == ["quarantine", "credential"]  # nothing lost, nothing twice
        assert _statuses(tmp_path) == [("quarantine", "fired", "sent"), ("credential", "fired", "sent")]
        assert _run(tmp_path, receiver) == exitcodes.OK
        assert len(receiver.requests) == 2


def test_killed_after_sending_before_marking(tmp_path):
    with Receiver() as receiver:
        _kill_at_pause(_start(tmp_path, receiver, "after_send"), "after_send")
        assert _rules_received(receiver) == ["quarantine"]  # the first went out; the kill came before its mark
        assert _statuses(tmp_path) == [("quarantine", "fired", "pending"), ("credential", "fired", "pending")]
        assert _run(tmp_path, receiver) == exitcodes.OK
        # at least once: the one in flight at the kill is sent again, the other once
        assert _rules_received(receiver) == ["quarantine", "quarantine", "credential"]
        assert _run(tmp_path, receiver) == exitcodes.OK
        assert len(receiver.requests) == 3
        assert _statuses(tmp_path) == [("quarantine", "fired", "sent"), ("credential", "fired", "sent")]
