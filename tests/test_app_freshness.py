"""The freshness panel (issue 27): one event dated in the future (a source with a wrong clock) made it say
"Data lag: 0 min" however old the rest of the data was. It now says the newest event is dated in the future and
counts the lag from the newest sync cycle that started before now."""

from __future__ import annotations

import copy
import json
import shutil
import uuid
from datetime import datetime, timedelta, timezone

import duckdb

from pages import common
from tests.conftest import run_cli
from tests.test_app_pages import _app, _open


def _freshness(at) -> list[str]:
    return [m.value for m in at.markdown if "Newest event" in m.value]


def _newest_cycle_end(db) -> datetime:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT max(ended_at) FROM derived_cycles").fetchone()[0].astimezone(timezone.utc)
    finally:
        con.close()


def test_a_future_dated_event_is_reported_and_the_lag_stays_honest(demo_db, tmp_path, monkeypatch):
    db = tmp_path / "future.duckdb"
    shutil.copy(demo_db, db)
    before = _newest_cycle_end(db)
    con = duckdb.connect(str(db), read_only=True)
    event = json.loads(con.execute("SELECT raw::VARCHAR FROM events ORDER BY activity_time DESC LIMIT 1").fetchone()[0])
    con.close()
    future = datetime.now(timezone.utc) + timedelta(days=3)
    event = copy.deepcopy(event) | {"id": str(uuid.uuid4()), "cycleId": str(uuid.uuid4()),
                                    "activityDateTime": future.strftime("%Y-%m-%dT%H:%M:%SZ")}
    (tmp_path / "future.json").write_text(json.dumps({"value": [event]}), encoding="utf-8")
    run_cli("ingest", "files", "--db", str(db), "-q", str(tmp_path / "future.json"), check=True)

    at = _open(_app(db, monkeypatch), "overview")
    (text,) = _freshness(at)
    assert "dated in the future" in text and "check the source clock" in text, text
    assert "in the future" in text and common.fmt_time(future) in text
    assert "Data lag: 0 min" not in text
    assert f"Newest event up to now: {common.fmt_time(before)}" in text
    assert f"Data lag: {common.fmt_age(before)}" in text


def test_the_lag_of_ordinary_data(demo_db, monkeypatch):
    at = _open(_app(demo_db, monkeypatch), "overview")
    (text,) = _freshness(at)
    newest = _newest_cycle_end(demo_db)
    assert "future" not in text and f"Data lag: {common.fmt_age(newest)}" in text


def test_fmt_age_says_when_a_time_is_ahead():
    now = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
    assert common.fmt_age(now - timedelta(minutes=12), now) == "12 min ago"
    assert common.fmt_age(now + timedelta(minutes=2), now) == "0 min ago"  # clock skew within the tolerance
    assert common.fmt_age(now + timedelta(hours=5), now) == "5 h in the future"
    assert common.fmt_age(now + timedelta(days=3), now) == "3 days in the future"
    assert common.fmt_age(now - timedelta(days=3), now) == "3 days ago"
