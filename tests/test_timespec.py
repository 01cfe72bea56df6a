"""One time grammar (ingest/timespec.py) for every command: `--since 2w` works for `queries export` as it does for
`ingest graph` (it did not), dates and RFC 3339 times too, and bad text is a usage error naming the forms."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ingest import exitcodes
from ingest.timespec import TimeSpecError, parse_duration, parse_when
from tests.conftest import run_cli

NOW = datetime(2026, 12, 7, 12, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("text,expected", [
    ("2w", NOW - timedelta(weeks=2)), ("30d", NOW - timedelta(days=30)), ("12h", NOW - timedelta(hours=12)),
    ("40m", NOW - timedelta(minutes=40)), ("40min", NOW - timedelta(minutes=40)), ("90s", NOW - timedelta(seconds=90)),
    ("2026-11-01", datetime(2026, 11, 1, tzinfo=timezone.utc)),
    ("2026-11-01T08:00:00Z", datetime(2026, 11, 1, 8, tzinfo=timezone.utc)),
    ("2026-11-01T10:00:00+02:00", datetime(2026, 11, 1, 8, tzinfo=timezone.utc)),
    ("2026-11-01T08:00:00", datetime(2026, 11, 1, 8, tzinfo=timezone.utc)),
])
def test_points_in_time(text, expected):
    got = parse_when(text, NOW)
    assert got == expected and got.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["yesterday", "2 weeks", "-3d", "2026-13-01", ""])
def test_bad_text_is_refused_with_the_forms(text):
    with pytest.raises(TimeSpecError, match="RFC 3339"):
        parse_when(text, NOW)


def test_durations():
    assert parse_duration("2w") == timedelta(days=14) and parse_duration("1.5h") == timedelta(minutes=90)
    with pytest.raises(TimeSpecError):
        parse_duration("2026-11-01")


def test_every_command_reads_the_same_grammar(demo_db, tmp_path):
    out = tmp_path / "e.csv"
    for since in ("2w", "3000d", "2026-01-01", "2026-01-01T00:00:00Z"):
        done = run_cli("queries", "export", "events", "--db", str(demo_db), "--out", str(out), "--since", since)
        assert done.returncode == exitcodes.OK, (since, done.stderr)
    bad = run_cli("queries", "export", "events", "--db", str(demo_db), "--out", str(out), "--since", "2 weeks")
    assert bad.returncode == exitcodes.USAGE and "RFC 3339" in bad.stderr
    graph = run_cli("ingest", "graph", "--db", str(tmp_path / "g.duckdb"), "--since", "2 weeks",
                    "--graph-url", "http://127.0.0.1:9/v1.0", env={"PROVLENS_GRAPH_TOKEN": "not-a-token"})
    assert graph.returncode == exitcodes.USAGE and "RFC 3339" in graph.stderr, graph.stderr
