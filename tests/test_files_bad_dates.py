"""One event dated outside any real time (year 10000, a BC year) is a reject with its position; the rest of the
file lands (issue 27: DuckDB parsed the date, and the derived refresh failed the whole file)."""

from __future__ import annotations

import gzip
import json

import duckdb
import pytest

from tests.conftest import run_cli

BAD = ["10000-01-01T00:00:00Z", "-0001-01-01T00:00:00Z", "0000-06-01T00:00:00Z", "2026-10-01T00:00:00 BC"]


def _events() -> list[dict]:
    good = [{"id": f"good-{i}", "activityDateTime": f"2026-10-01T0{i}:00:00Z"} for i in range(5)]
    bad = [{"id": f"bad-{i}", "activityDateTime": t} for i, t in enumerate(BAD)]
    # A next-retry time out of range in the reason text leaves the event in, without a retry time.
    retry = {"id": "retry", "activityDateTime": "2026-10-01T06:00:00Z", "provisioningStatusInfo": {
        "status": "failure", "errorInformation": {"reason": "The operation will be retried 2 times. It will be "
                                                            "retried again after this date: 10000-01-01T00:00:00Z"}}}
    return good[:2] + bad[:2] + [retry] + good[2:] + bad[2:]


def _write(path, kind: str) -> None:
    events = _events()
    if kind == "page.json.gz":
        with gzip.open(path, "wb") as fh:
            fh.write(json.dumps({"value": events}).encode())
    else:
        path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")


@pytest.mark.parametrize("kind,first", [("page.json.gz", True), ("events.ndjson", True), ("events.ndjson", False)])
def test_out_of_range_dates_are_rejected_and_the_rest_lands(tmp_path, kind, first):
    db = tmp_path / "s.duckdb"
    if not first:  # a store that already holds events takes the other load path
        earlier = tmp_path / "earlier.ndjson"
        earlier.write_text(json.dumps({"id": "earlier", "activityDateTime": "2026-09-01T00:00:00Z"}) + "\n")
        run_cli("ingest", "files", "--db", str(db), "-q", str(earlier), check=True)
    src = tmp_path / kind
    _write(src, kind)
    proc = run_cli("ingest", "files", "--db", str(db), "-q", str(src))
    assert proc.returncode == 0, proc.stderr
    assert "Exception" not in proc.stderr and "4 rejected" in proc.stderr
    con = duckdb.connect(str(db), read_only=True)
    ids = {r[0] for r in con.execute("SELECT id FROM events").fetchall()} - {"earlier"}
    assert ids == {f"good-{i}" for i in range(5)} | {"retry"}
    assert con.execute("SELECT next_retry_at FROM events WHERE id = 'retry'").fetchone() == (None,)
    rejects = con.execute("SELECT position, reason FROM ingest_rejects ORDER BY position").fetchall()
    con.close()
    expected = [f"value[{i}]" for i in (2, 3, 8, 9)] if kind.startswith("page") else \
        [f"line {i}" for i in (3, 4, 9, 10)]  # items from 0, lines from 1
    assert [p for p, _ in rejects] == sorted(expected)
    assert all(r.startswith("activityDateTime out of range") for _, r in rejects), rejects
