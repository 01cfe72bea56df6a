"""identity_search reads the store's per-identity names (derived_identity_names, migration 11), and the
events only of name groups across the time window's edge: its rows equal the plain query over the events
(the reference below) for many terms and filters, after a first load, after later loads that give
existing identities new names or change a stored event, and on a store upgraded in place by
``python -m ingest migrate``."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta

import duckdb
import pytest

from ingest import exitcodes, summaries
from queries.catalog import QUERIES
from queries.db import bind, run
from queries.filters import EVENT_FILTER, Filters
from tests.conftest import run_cli

# The query before migration 11 (every matching event aggregated), with its lists sorted.
REFERENCE = f"""
    SELECT source_id, arg_max(source_upn, activity_time) AS source_upn,
           arg_max(source_name, activity_time) AS source_name,
           string_agg(DISTINCT user_name, ', ' ORDER BY user_name) AS user_names,
           string_agg(DISTINCT target_id, ', ' ORDER BY target_id) AS target_ids,
           count(*) AS events, min(activity_time) AS first_seen, max(activity_time) AS last_seen
    FROM events
    WHERE {EVENT_FILTER}
      AND (source_id = $term::VARCHAR OR target_id = $term::VARCHAR
           OR contains(lower(source_upn), lower($term::VARCHAR))
           OR contains(lower(user_name), lower($term::VARCHAR)))
    GROUP BY source_id ORDER BY last_seen DESC, source_id LIMIT 50"""


def _write(path, events: list[dict]) -> str:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return str(path)


def _load(db: str, ndjson: str) -> None:
    done = run_cli("ingest", "files", "--db", db, ndjson, "-q")
    assert done.returncode == exitcodes.OK, done.stderr


def _terms_and_filters(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[Filters]]:
    source_id, upn, user_name, target_id = con.execute(
        "SELECT source_id, source_upn, user_name, target_id FROM events WHERE target_id IS NOT NULL "
        "AND source_upn IS NOT NULL ORDER BY id LIMIT 1").fetchone()
    terms = [source_id, target_id, upn, upn.split("@")[0][:5].upper(), user_name[2:9], "@", "a", "",
             "no-such-identity", source_id[:8]]
    sp, job = con.execute("SELECT service_principal_id, job_id FROM events ORDER BY id LIMIT 1").fetchone()
    first, last = con.execute("SELECT min(activity_time), max(activity_time) FROM events").fetchone()
    middle = first + (last - first) / 2
    filters = [Filters(), Filters(service_principal_ids=(sp,)), Filters(job_id=job), Filters(since=middle),
               Filters(since=first + timedelta(hours=5), until=middle, service_principal_ids=(sp,)),
               Filters(since=first - timedelta(days=1)),  # a window holding every event (the 30-day default)
               Filters(since=first, until=last), Filters(until=first)]  # the last event and everything out
    return terms, filters


def _assert_equal_to_reference(db: str, *, renamed: list[str] = ()) -> int:
    """Every term and filter: the catalog's rows = the reference's rows (EXCEPT ALL both ways, and the
    same order). Returns how many rows the comparisons covered."""
    sql = QUERIES["identity_search"].sql
    assert "derived_identity_names" in sql
    covered = 0
    with duckdb.connect(db, read_only=True) as con:
        terms, filters = _terms_and_filters(con)
        for term in [*terms, *renamed]:
            for f in filters:
                params = {**f.params(), "term": term}
                got = con.execute(sql, bind(sql, params)).fetchall()
                want = con.execute(REFERENCE, bind(REFERENCE, params)).fetchall()
                assert got == want, (term, f)
                for a, b in ((sql, REFERENCE), (REFERENCE, sql)):
                    both = {**bind(a, params), **bind(b, params)}
                    assert con.execute(f"SELECT count(*) FROM (({a}) EXCEPT ALL ({b}))", both).fetchone()[0] == 0
                covered += len(got)
        stored = sorted(con.execute("FROM derived_identity_names").fetchall(), key=repr)
        fresh = sorted(con.execute(summaries.by_table()["derived_identity_names"].build_sql()).fetchall(), key=repr)
        assert stored == fresh  # the table itself equals a recomputation from all events
    return covered


def _upn(event: dict) -> str | None:
    """The UPN the event names (in the source identity's details or an import step's), as the loader reads it."""
    details = (event.get("sourceIdentity") or {}).get("details") or {}
    steps = [s.get("details") or {} for s in event.get("provisioningSteps") or []]
    found = [d.get("UserPrincipalName") or d.get("userPrincipalName") for d in [details, *steps]]
    return next((u for u in found if u), None)


def _renamed(event: dict, n: int, hours: int) -> tuple[dict, str]:
    """A later event of the same identity under a new UPN/userName and a new target id."""
    upn = _upn(event)
    new_upn = f"renamed{n}.{upn}"
    changed = json.loads(json.dumps(event).replace(upn, new_upn))
    changed["id"] = f"{event['id']}-renamed-{n}"
    when = datetime.fromisoformat(event["activityDateTime"].replace("Z", "+00:00"))
    changed["activityDateTime"] = (when + timedelta(hours=hours)).isoformat()
    changed["targetIdentity"] = {**(changed.get("targetIdentity") or {}), "id": f"t-renamed-{n}"}
    return changed, new_upn


def _with_user_name(event: dict, user_name: str) -> dict:
    """A later copy of an event whose userName (the modified property) differs from its UPN."""
    changed = copy.deepcopy(event)
    changed["id"] = f"{event['id']}-alias"
    when = datetime.fromisoformat(event["activityDateTime"].replace("Z", "+00:00"))
    changed["activityDateTime"] = (when + timedelta(minutes=30)).isoformat()
    mods = [m for m in changed.get("modifiedProperties") or [] if m.get("displayName", "").lower() != "username"]
    changed["modifiedProperties"] = [*mods, {"displayName": "userName", "oldValue": None, "newValue": user_name}]
    return changed


@pytest.fixture(scope="module")
def ordered_events(sim) -> list[dict]:
    return sorted(sim.events, key=lambda e: (e["activityDateTime"], e["id"]))


def test_search_equals_the_reference_after_loads_that_add_and_change_names(ordered_events, tmp_path):
    db = str(tmp_path / "s.duckdb")
    half = len(ordered_events) // 2
    _load(db, _write(tmp_path / "a.ndjson", ordered_events[:half]))  # the first load (into an empty store)
    assert _assert_equal_to_reference(db) > 0

    # A second load: the rest, plus identities of the first load under new names and target ids.
    with_upn = [e for e in ordered_events[:half] if _upn(e)]
    originals = with_upn[:: max(1, len(with_upn) // 5)][:5]
    renames = [_renamed(e, n, hours=1) for n, e in enumerate(originals)]
    alias = _with_user_name(originals[1], "Alias.Only-In-UserName@Other.Example")
    _load(db, _write(tmp_path / "b.ndjson", ordered_events[half:] + [e for e, _ in renames] + [alias]))
    new_names = [upn for _, upn in renames]
    found = run(db, "identity_search", Filters(), term="alias.only")  # a userName unlike the UPN
    assert list(found["source_id"]) == [alias["sourceIdentity"]["id"]]
    assert "Alias.Only-In-UserName@Other.Example" in found["user_names"][0]
    with duckdb.connect(db, read_only=True) as con:  # the new names are there (not only the old ones)
        for (event, upn) in renames:
            row = con.execute(QUERIES["identity_search"].sql, bind(QUERIES["identity_search"].sql, {
                **Filters().params(), "term": upn})).fetchall()
            assert [r[0] for r in row] == [event["sourceIdentity"]["id"]]
            assert row[0][1] == upn  # the latest UPN
    assert _assert_equal_to_reference(db, renamed=[*new_names, "t-renamed-0", "renamed", "ALIAS.only", "other.ex"]) > 0

    # A re-sent event whose content changed (an update): its old name goes when no other event has it.
    changed, upn = _renamed(originals[0], 99, hours=1)
    changed["id"] = renames[0][0]["id"]
    _load(db, _write(tmp_path / "c.ndjson", [changed]))
    assert run(db, "identity_search", Filters(), term=renames[0][1]).empty
    assert list(run(db, "identity_search", Filters(), term=upn)["source_id"]) == [changed["sourceIdentity"]["id"]]
    assert _assert_equal_to_reference(db, renamed=[upn, *new_names]) > 0


def test_a_store_upgraded_by_ingest_migrate_searches_the_same(ordered_events, tmp_path):
    db = str(tmp_path / "m.duckdb")
    _load(db, _write(tmp_path / "all.ndjson", ordered_events))
    with duckdb.connect(db) as con:  # as a provlens with another definition of the table left it
        con.execute("DELETE FROM derived_identity_names")
        con.execute("UPDATE summary_state SET fingerprint = 'older' WHERE summary = 'derived_identity_names'")
    done = run_cli("ingest", "migrate", "--db", db)
    assert done.returncode == exitcodes.OK, done.stderr
    assert "rebuilding summary derived_identity_names " in done.stderr
    assert _assert_equal_to_reference(db) > 0

    # and later loads keep it up to date
    changed, upn = _renamed(copy.deepcopy([e for e in ordered_events if _upn(e)][-1]), 7, hours=2)
    _load(db, _write(tmp_path / "more.ndjson", [changed]))
    assert _assert_equal_to_reference(db, renamed=[upn]) > 0
