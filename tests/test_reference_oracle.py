"""The oracle: every named page query and dataset with a reference (queries/reference.py) returns what its plain
recomputation over the source tables returns, on stores built several ways and under the filters a person uses.

Stores: the demo CLI (one load, with the SCIM trail); the simulator's events shuffled into batches of 97 with
re-sent changed events; 40-minute pulls that re-read a 2-hour overlap; `ingest files` killed (SIGKILL) halfway
and run again; the SCIM trail loaded before the events. Filters: all time, the last 30 days, 2 days and 24 hours
of the data (the dashboard's default and recent views, counted back from the data's newest event), a window with
ragged edges, one app, one job.
"""

from __future__ import annotations

import copy
import json
import os
import random
import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ingest.store import Store
from queries.catalog import QUERIES
from queries.db import release, run, run_sql
from queries.filters import Filters
from queries.reference import REFERENCES, SUMMARY_READERS
from tests.conftest import PY, ROOT, run_cli
from tests.reliability_harness import run_and_kill

STORES = ["demo", "batched", "pulls", "killed", "scim_first"]
FILTERS = ["all", "last_30_days", "last_2_days", "last_24_hours", "ragged", "one_app", "one_job"]


def _load(store: Store, events: list[dict]) -> None:
    store.load_events("SELECT unnest(?::JSON[]) AS raw, 'test#1' AS pos", [[json.dumps(e) for e in events]],
                      run_id=store.start_run("test"))


def _changed(events: list[dict]) -> list[dict]:
    """Re-sent copies: a failure that now reports success, and an event whose UPN changed."""
    out = []
    for e in events:
        if str((e.get("provisioningStatusInfo") or {}).get("status", "")).lower() == "failure":
            flipped = copy.deepcopy(e)
            flipped["provisioningStatusInfo"] = {"status": "success"}
            out.append(flipped)
            break
    renamed = copy.deepcopy(events[len(events) // 3])
    if isinstance(renamed.get("sourceIdentity"), dict):
        renamed["sourceIdentity"]["details"] = {**(renamed["sourceIdentity"].get("details") or {}),
                                                "UserPrincipalName": "renamed.person@contoso.example"}
    renamed["provlensRevision"] = 1
    return [*out, renamed]


def _count(db: str) -> int:
    try:
        with duckdb.connect(db, read_only=True) as con:
            return con.execute("SELECT count(*) FROM events").fetchone()[0]
    except duckdb.Error:  # killed before the schema was committed
        return 0


def _write_ndjson(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stores(demo_db, sim, sim_dir, tmp_path_factory) -> dict[str, str]:
    work = tmp_path_factory.mktemp("oracle")
    events = sorted(sim.events, key=lambda e: e["activityDateTime"])
    built = {"demo": str(demo_db)}

    shuffled = events[:]
    random.Random(5).shuffle(shuffled)
    with Store.open(str(work / "batched.duckdb")) as store:
        for i in range(0, len(shuffled), 97):
            _load(store, shuffled[i:i + 97])
        _load(store, _changed(events))
    built["batched"] = str(work / "batched.duckdb")

    times = [datetime.fromisoformat(e["activityDateTime"].replace("Z", "+00:00")) for e in events]
    with Store.open(str(work / "pulls.duckdb")) as store:
        t, step, overlap = times[0], timedelta(minutes=40), timedelta(hours=2)
        while t <= times[-1] + step:
            window = [e for e, at in zip(events, times) if t - overlap <= at < t + step]
            if window:
                _load(store, window)
            t += step
    built["pulls"] = str(work / "pulls.duckdb")

    files = [_write_ndjson(work / f"part{i}.ndjson", events[i::6]) for i in range(6)]
    for attempt, delay in enumerate((0.6, 0.9, 1.3, 1.8, 2.5, 3.5)):  # until a kill lands between two files' commits
        db = str(work / f"killed{attempt}.duckdb")
        argv = [PY, "-m", "ingest", "files", *map(str, files), "--db", db]
        killed = run_and_kill(argv, dict(os.environ), after_seconds=delay)
        loaded = _count(db) if Path(db).exists() else 0
        if killed.killed and 0 < loaded < len(events):
            break
    else:
        pytest.fail("no SIGKILL left a partly loaded store")
    run_cli("ingest", "files", *map(str, files), "--db", db, check=True)
    built["killed"] = db

    db = str(work / "scim_first.duckdb")
    scim_files = sorted(p for p in Path(sim_dir).rglob("*") if p.is_file() and "scim" in p.name.lower()
                        and p.suffix in (".jsonl", ".gz", ".csv"))
    assert scim_files, list(Path(sim_dir).rglob("*"))
    run_cli("ingest", "scim", *map(str, scim_files), "--db", db, check=True)
    run_cli("ingest", "files", str(_write_ndjson(work / "all.ndjson", events)), "--db", db, check=True)
    built["scim_first"] = db
    return built


def _samples(db: str) -> dict:
    with duckdb.connect(db, read_only=True) as con:
        first, last = con.execute("SELECT min(activity_time), max(activity_time) FROM events").fetchone()
        sp, job = con.execute("SELECT service_principal_id, job_id FROM events GROUP BY ALL "
                              "ORDER BY count(*) DESC, 1, 2 LIMIT 1").fetchone()
        cycle_id = con.execute("SELECT cycle_id FROM events WHERE cycle_id IS NOT NULL GROUP BY cycle_id "
                               "ORDER BY count(*) DESC, cycle_id LIMIT 1").fetchone()[0]
        source_id, upn = con.execute(
            "SELECT source_id, any_value(source_upn) FROM events WHERE status = 'failure' AND source_upn LIKE '%@%' "
            "GROUP BY source_id ORDER BY count(*) DESC, source_id LIMIT 1").fetchone()
        user = con.execute("SELECT user_name FROM scim_requests WHERE user_name IS NOT NULL "
                           "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()
        # the Event page's event: a failure with SCIM requests correlated to it where there are, else any failure
        event_id = con.execute(
            "SELECT e.id FROM events e LEFT JOIN correlation c ON c.event_id = e.id AND c.request_id IS NOT NULL "
            "WHERE e.status = 'failure' GROUP BY e.id ORDER BY count(c.request_id) DESC, e.id LIMIT 1").fetchone()[0]
    release(db)
    filters = {
        "all": Filters(),
        "last_30_days": Filters(since=last - timedelta(days=30)),  # the dashboard's default view
        "last_2_days": Filters(since=last - timedelta(days=2)),
        "last_24_hours": Filters(since=last - timedelta(hours=24)),
        "ragged": Filters(since=first + timedelta(days=1, minutes=17, seconds=3),
                          until=last - timedelta(days=1, minutes=3)),
        "one_app": Filters(service_principal_ids=(sp,)),
        "one_job": Filters(job_id=job),
    }
    params = {"limit": 7, "cycle_id": cycle_id, "source_id": source_id, "term": upn.split("@")[0][:4],
              "identity": user[0].upper() if user else upn, "bucket": "hour", "allowed_domains": None,
              "event_id": event_id}
    return {"filters": filters, "params": params}


def _comparable(frame: pd.DataFrame) -> list[tuple]:
    rows = []
    for row in frame.astype(object).itertuples(index=False):
        rows.append(tuple(None if v is None or (isinstance(v, float) and v != v) else
                          round(float(v), 9) if isinstance(v, float) else
                          int(v) if hasattr(v, "__int__") and not isinstance(v, (str, bool, datetime)) and
                          type(v).__name__.startswith(("int", "Int", "uint")) else v for v in row))
    return rows


def _uses_param(sql: str, name: str) -> bool:
    return f"${name}" in sql


def _compare(db: str, filters: Filters, samples: dict, names: tuple[str, ...] | None = None) -> list[str]:
    """Every named query with a reference (or those in ``names``) against it under ``filters``: the differences
    found."""
    failures = []
    for name, reference in sorted(REFERENCES.items()):
        if names is not None and name not in names:
            continue
        named_sql = QUERIES[name].sql
        params = {k: v for k, v in samples["params"].items() if _uses_param(named_sql, k)}
        # a limit past what the store keeps takes the computing branch of a query that reads a kept top-N
        for extra in ({}, {"limit": 100_000}) if "limit" in params else ({},):
            got = run(db, name, filters, **(params | extra))
            with duckdb.connect(db, read_only=True) as con:
                con.execute("SET TimeZone = 'UTC'")
                want = run_sql(con, reference, filters.params() | params | extra)
            if list(got.columns) != list(want.columns):
                failures.append(f"{name}: columns {list(got.columns)} != reference {list(want.columns)}")
                continue
            g, w = _comparable(got), _comparable(want)
            if g != w:
                only_named = [r for r in g if r not in w][:3]
                missing = [r for r in w if r not in g][:3]
                failures.append(f"{name} {extra}: {len(g)} rows vs reference {len(w)}; only named: {only_named}; "
                                f"only reference: {missing}")
    release(db)
    return failures


@pytest.mark.parametrize("filter_name", FILTERS)
@pytest.mark.parametrize("store_name", STORES)
def test_every_named_query_equals_its_reference(stores, store_name, filter_name):
    db = stores[store_name]
    samples = _samples(db)
    failures = _compare(db, samples["filters"][filter_name], samples)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("types", [("User",), ("Group",)])
def test_the_identity_type_filter_equals_its_reference(stores, tmp_path_factory, types):
    """The demo's users plus the real and derived classification samples (a Group among them): with an identity-type
    filter every query leaves the stored all-time shortcuts and still equals its reference."""
    import shutil

    from ingest.file_ingest import ingest_files

    db = tmp_path_factory.getbasetemp() / "oracle-typed.duckdb"
    if not db.exists():
        shutil.copy(stores["demo"], db)
        samples_dir = ROOT / "tests" / "data" / "real"
        assert ingest_files(str(db), [str(samples_dir / "graph-docs-list-example2.json")], quiet=True
                            ).loaded.new == 1
    samples = _samples(str(db))
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(DISTINCT source_type) FROM events").fetchone()[0] == 2
    failures = _compare(str(db), Filters(identity_types=types), samples)
    assert not failures, "\n".join(failures)


# The queries that take the event filters (queries/filters.py: status, action, error code, skip category, identity,
# cycle, change): the Events page's, the events, failures and skipped datasets and the top errors.
EVENT_FILTERED = ("events", "events_recent", "events_count", "failures", "failures_recent", "skipped", "top_errors",
                  "top_error_codes")
DETAIL_COMBOS = ["status", "statuses_action", "error", "skip", "identity_upn", "identity_target", "cycle", "change",
                 "failure_error_identity", "action_cycle_job", "unknown_identity"]


def _detail_filters(db: str, combo: str) -> Filters:
    """A combination of event filters whose values come from the store itself (plain SQL)."""
    with duckdb.connect(db, read_only=True) as con:
        def one(sql: str, params: list | None = None):
            return con.execute(sql, params or []).fetchone()
        code, upn, source = one("SELECT error_code, any_value(source_upn), any_value(source_id) FROM events "
                                "WHERE status = 'failure' AND source_upn IS NOT NULL GROUP BY error_code "
                                "ORDER BY count(*) DESC, error_code LIMIT 1")
        skip = one("SELECT skip_category FROM events WHERE skip_category IS NOT NULL GROUP BY 1 "
                   "ORDER BY count(*) DESC, 1 LIMIT 1")[0]
        target = one("SELECT target_id FROM events WHERE target_id IS NOT NULL GROUP BY 1 "
                     "ORDER BY count(*) DESC, 1 LIMIT 1")[0]
        cycle, job = one("SELECT cycle_id, any_value(job_id) FROM events WHERE cycle_id IS NOT NULL GROUP BY 1 "
                         "ORDER BY count(*) DESC, 1 LIMIT 1")
        change = one("SELECT change_id FROM events WHERE change_id IS NOT NULL ORDER BY activity_time, id LIMIT 1")[0]
        action = one("SELECT action FROM events WHERE cycle_id = ? GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
                     [cycle])[0]
    release(db)
    return {
        "status": Filters(statuses=("failure",)),
        "statuses_action": Filters(statuses=("success", "skipped"), actions=("update",)),
        "error": Filters(error_codes=(code,)),
        "skip": Filters(skip_categories=(skip,)),
        "identity_upn": Filters(identity=upn.upper()),  # case-insensitive
        "identity_target": Filters(identity=target),
        "cycle": Filters(cycle_id=cycle),
        "change": Filters(change_id=change),
        "failure_error_identity": Filters(statuses=("failure",), error_codes=(code,), identity=source),
        "action_cycle_job": Filters(actions=(action,), cycle_id=cycle, job_id=job),
        "unknown_identity": Filters(identity="nobody@nowhere.example"),
    }[combo]


@pytest.mark.parametrize("combo", DETAIL_COMBOS)
@pytest.mark.parametrize("store_name", STORES)
def test_the_event_filters_equal_their_reference(stores, store_name, combo):
    """Every query that takes the event filters equals its plain reference under each filter and combination."""
    db = stores[store_name]
    failures = _compare(db, _detail_filters(db, combo), _samples(db), EVENT_FILTERED)
    assert not failures, "\n".join(failures)


def test_the_event_filters_keep_rows_and_narrow_them(stores):
    """The combinations above are not vacuous: on the demo store each (but the unknown identity) keeps some events
    and fewer than all."""
    db = stores["demo"]
    with duckdb.connect(db, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        total = run_sql(con, REFERENCES["events_count"], Filters().params()).iloc[0, 0]
        counts = {combo: run_sql(con, REFERENCES["events_count"], _detail_filters(db, combo).params()).iloc[0, 0]
                  for combo in DETAIL_COMBOS}
    release(db)
    assert counts.pop("unknown_identity") == 0
    assert all(0 < n < total for n in counts.values()), counts


def test_the_oracle_has_rows_to_compare(stores):
    """A reference that returns nothing proves nothing: on the demo store every reference has rows unfiltered."""
    db = stores["demo"]
    samples = _samples(db)
    with duckdb.connect(db, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        empty = [name for name, sql in REFERENCES.items()
                 if run_sql(con, sql, Filters().params() | samples["params"]).empty]
    assert not empty


def test_every_summary_table_is_read_by_a_checked_query():
    """Each declared summary feeds at least one query the oracle checks, and each of those queries really reads it
    (so a summary cannot drift without a failing comparison)."""
    from ingest import summaries

    assert set(SUMMARY_READERS) == {s.table for s in summaries.declared()}
    for table, readers in SUMMARY_READERS.items():
        for name in readers:
            assert name in REFERENCES, name
            assert table in QUERIES[name].sql, (table, name)


def test_the_references_read_no_summary():
    for name, sql in REFERENCES.items():
        assert "derived_" not in sql and "correlation_requests" not in sql, name


if __name__ == "__main__":  # pragma: no cover - a person's quick look: python -m tests.test_reference_oracle DB
    sys.exit(pytest.main([str(ROOT / __file__), "-q"]))
