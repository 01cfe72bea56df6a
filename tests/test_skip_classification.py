"""Classification from real records (issue 22, item 3): each skip reason of a real or doc-derived record maps to its
category and advice, an unknown reason shows as itself (never "no change"), a group's 409 is a group violation,
the identity type is exported and filterable, and the same event id twice in one load keeps the later copy.

Samples: tests/data/real/classification/ (SOURCES.md there); the Graph-shaped files are built by its derive.py.
"""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import duckdb
import pytest

from ingest.file_ingest import ingest_files
from ingest.skip_reasons import CATEGORIES
from queries.db import run
from queries.export import export
from queries.filters import Filters
from tests.conftest import ROOT

SAMPLES = ROOT / "tests" / "data" / "real" / "classification"
GROUP_409 = SAMPLES.parent / "graph-docs-list-example2.json"


@pytest.fixture(scope="module")
def derived(tmp_path_factory) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("derive_classification", SAMPLES / "derive.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("derived")
    module.main(out)
    return out


@pytest.fixture(scope="module")
def samples_db(derived, tmp_path_factory) -> str:
    db = str(tmp_path_factory.mktemp("samples") / "samples.duckdb")
    outcome = ingest_files(db, [str(derived / "elastic-provisioninglogs-graph.ndjson"),
                                str(derived / "derived-skips.ndjson"), str(GROUP_409)], quiet=True)
    assert outcome.rejected == 0 and outcome.loaded.read == 14
    return db


def _events(db: str, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(db, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


# Read by hand from the samples: the real record's SkipReason and its skip step; for the derived ones, the signal
# derive.py put in (named after the Microsoft page it comes from).
EXPECTED_SKIPS = {
    "d6cbb0bd-c3ec-6455-bd3e-4282141ce369": ("missing_attribute", "AttributeValidationFailed"),  # real (elastic)
    "derived-default-access": ("default_access", "NotEffectivelyEntitled"),  # User has the required role: False
    "derived-not-assigned": ("not_assigned", "NotEffectivelyEntitled"),  # Assigned to the application: False
    "derived-inactive": ("inactive", "NotEffectivelyEntitled"),  # IsActive: False
    "derived-scoping-filter": ("out_of_scope", None),  # Scoping filter evaluation passed: False
    "derived-not-entitled": ("not_entitled", "NotEffectivelyEntitled"),  # every check True
    "derived-redundant-export": ("no_change", "RedundantExport"),
    "derived-duplicate-target": ("duplicate_match", "DuplicateTargetEntries"),
    "derived-import-skipped": ("missing_attribute", "ImportSkipped"),
    "derived-entry-sync-skipped": ("other", "EntrySynchronizationSkipped"),  # says neither scope nor no-change
    "derived-unknown-reason": ("other", "SomeFutureSkipReason"),
}


def test_each_skip_reason_maps_to_its_category_and_advice(samples_db, tmp_path):
    got = {i: (c, r) for i, c, r in _events(samples_db, "SELECT id, skip_category, skip_reason FROM events "
                                                        "WHERE status = 'skipped'")}
    assert got == EXPECTED_SKIPS
    # the skipped export carries the category's advice from the skip-reason table
    out = tmp_path / "skipped.csv"
    export(samples_db, "skipped", str(out))
    with open(out, newline="", encoding="utf-8") as fh:
        rows = {r["id"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(EXPECTED_SKIPS)
    for event_id, (category, _) in EXPECTED_SKIPS.items():
        assert rows[event_id]["recommended_action"] == CATEGORIES[category][1], event_id


def test_the_real_attribute_validation_skip_is_not_nothing_to_do(samples_db):
    """elastic/integrations' real record: SkipReason AttributeValidationFailed on a missing name.familyName - the
    user was never created. Before issue 22 any EntrySynchronizationSkip step made it "no change"."""
    (row,) = _events(samples_db, "SELECT status, action, skip_category, skip_detail, service_principal_id, "
                                 "source_id, source_type, target_type, target_id, user_name FROM events "
                                 "WHERE id = 'd6cbb0bd-c3ec-6455-bd3e-4282141ce369'")
    status, action, category, detail, sp, source_id, source_type, target_type, target_id, user_name = row
    assert (status, action, category) == ("skipped", "create", "missing_attribute")
    assert "name.familyName is missing or invalid" in detail  # the skip step's text, kept
    assert sp == "74866461-3754-40ed-a743-9c88ff29643e" and source_id == "7383d412-41f2-478f-a317-7396cc32ce9e"
    assert (source_type, target_type) == ("User", "urn:ietf:params:scim:schemas:core:2.0:User")
    assert target_id is None  # never created: the target has no id
    assert user_name == "ellie@mauriziobrancaoutlook.onmicrosoft.com"  # sourceIdentity.details.UserPrincipalName
    assert "Nothing to do" not in CATEGORIES[category][1]


def test_an_unknown_reason_is_shown_as_itself(samples_db):
    by_reason = run(samples_db, "skips_by_category", Filters())
    other = by_reason[by_reason["skip_category"] == "other"]
    assert set(other["skip_reason"]) == {"SomeFutureSkipReason", "EntrySynchronizationSkipped"}
    assert "no_change" not in set(by_reason.loc[by_reason["skip_reason"] == "SomeFutureSkipReason", "skip_category"])
    (detail,) = _events(samples_db, "SELECT skip_detail FROM events WHERE id = 'derived-unknown-reason'")[0]
    assert "because of a new rule" in detail


def test_a_group_conflict_is_a_group_violation_with_its_own_advice(samples_db):
    """The Graph docs' 409 (example 2 of provisioningobjectsummary-list.md) is a Group 'Self-service Pilot'."""
    violations = run(samples_db, "violations", Filters())
    group = violations[violations["kind"] == "duplicate_group_name"]
    assert list(group["source_id"]) == ["5e6c9rae-ab4d-5239-8ad0-174391d110eb"]
    assert list(group["source_name"]) == ["Self-service Pilot"] and list(group["source_type"]) == ["Group"]
    failures = run(samples_db, "failures", Filters())
    advice = failures.set_index("id").loc["gc532ff9-r265-ec76-861e-42e2970a8218", "recommended_action"]
    assert "duplicate group name" in advice and "userName" not in advice
    # the user-typed conflict (elastic's third record: sourceIdentity User) stays a userName violation
    assert list(violations.loc[violations["kind"] == "duplicate_user_name", "source_type"]) == ["User"]


def test_identity_type_is_exported_and_filters_every_event_dataset(samples_db, tmp_path):
    for dataset, id_column in (("events", "id"), ("failures", "id"), ("violations", "source_id")):
        everything = run(samples_db, dataset, Filters())
        groups = run(samples_db, dataset, Filters(identity_types=("Group",)))
        users = run(samples_db, dataset, Filters(identity_types=("User",)))
        assert {"source_type", "target_type"} <= set(everything.columns), dataset
        assert set(groups["source_type"]) == {"Group"} and set(users["source_type"]) == {"User"}, dataset
        assert sorted(groups[id_column]) == sorted(everything.loc[everything["source_type"] == "Group", id_column])
        assert sorted(users[id_column]) == sorted(everything.loc[everything["source_type"] == "User", id_column])
        assert len(groups) and len(users), dataset
    assert run(samples_db, "skipped", Filters(identity_types=("Group",))).empty  # every sample skip is a User
    out = tmp_path / "groups.csv"
    export(samples_db, "events", str(out), filters=Filters(identity_types=("Group",)))
    manifest = json.loads(Path(str(out) + ".manifest.json").read_text())
    assert manifest["filters"]["identity_types"] == ["Group"] and manifest["rows"] == 1


def test_the_violations_page_filters_on_identity_type(samples_db, monkeypatch):
    # AppTest re-runs only the page script after the first run (see test_app_pages): the sidebar is read on the
    # Overview, and each view starts from its URL.
    from tests.test_app_pages import _app, _metrics, _open

    at = _open(_app(samples_db, monkeypatch), "overview")
    assert at.sidebar.multiselect(key="f_types").options == ["User", "Group"]  # by events: 12 User, 1 Group
    at.switch_page("pages/violations.py").run()
    m = _metrics(at)
    assert (m["Duplicate group name"], m["Duplicate userName"]) == ("1", "1")
    at = _open(_app(samples_db, monkeypatch, type="Group"), "overview")
    assert at.sidebar.multiselect(key="f_types").value == ["Group"]
    assert at.query_params["type"] in ("Group", ["Group"])  # kept in the URL
    assert _metrics(at)["Events"] == "1"
    at.switch_page("pages/violations.py").run()
    m = _metrics(at)
    assert (m["Duplicate group name"], m["Duplicate userName"]) == ("1", "0")
    assert any("displayName" in c.value for c in at.caption)  # the group kind's own advice


def test_the_skipped_page_shows_every_category_with_its_advice(samples_db, monkeypatch):
    from tests.test_app_pages import _app, _metrics, _open

    at = _open(_app(samples_db, monkeypatch), "skipped")
    m = _metrics(at)
    counts = {}
    for category, _ in EXPECTED_SKIPS.values():
        counts[category] = counts.get(category, 0) + 1
    assert m == {CATEGORIES[c][0]: str(n) for c, n in counts.items()}
    at.multiselect(key="skip_categories").set_value(["missing_attribute", "other"]).run()
    text = " ".join(md.value.replace("\\", "") for md in at.markdown)
    assert "was NOT created" in text and "provlens does not know this reason" in text


# ---------------------------------------------------------------- the same id twice in one load

def _copies(tmp_path: Path) -> tuple[dict, dict, dict]:
    """Copies of the Graph docs' group event: ``early`` (failure), ``late`` (a second later, success) and
    ``same`` (early's time, warning)."""
    event = json.loads(GROUP_409.read_text())["value"][0]
    early = copy.deepcopy(event)
    late = copy.deepcopy(event)
    late["activityDateTime"] = "2019-06-24T20:53:09Z"
    late["provisioningStatusInfo"] = {"status": "success", "errorInformation": None}
    same = copy.deepcopy(event)
    same["provisioningStatusInfo"] = {"status": "warning", "errorInformation": None}
    return early, late, same


def _status(db: str) -> str:
    return _events(db, "SELECT status FROM events WHERE id = 'gc532ff9-r265-ec76-861e-42e2970a8218'")[0][0]


def _write(path: Path, events: list[dict]) -> str:
    if path.suffix == ".ndjson":
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
    else:
        path.write_text(json.dumps({"value": events}))
    return str(path)


@pytest.mark.parametrize("order", ["forward", "reversed"])
def test_within_a_file_the_later_time_then_the_later_position_wins(tmp_path, order):
    early, late, same = _copies(tmp_path)
    flip = (lambda x: x[::-1]) if order == "reversed" else (lambda x: x)
    db = str(tmp_path / "a.duckdb")
    ingest_files(db, [_write(tmp_path / "times.json", flip([early, late]))], quiet=True)
    assert _status(db) == "success"  # the later activityDateTime, whatever its place
    db = str(tmp_path / "b.duckdb")
    ingest_files(db, [_write(tmp_path / "ties.json", flip([early, same]))], quiet=True)
    assert _status(db) == ("warning" if order == "forward" else "failure")  # equal times: the later record


@pytest.mark.parametrize("suffixes", [(".ndjson", ".ndjson"), (".json", ".ndjson"), (".ndjson", ".json")])
@pytest.mark.parametrize("order", ["forward", "reversed"])
def test_across_files_of_one_load_the_later_time_then_the_later_file_wins(tmp_path, order, suffixes):
    """NDJSON files are loaded by DuckDB directly, the others staged: either way, in the order given."""
    early, late, same = _copies(tmp_path)
    files = [_write(tmp_path / f"one{suffixes[0]}", [early]), _write(tmp_path / f"two{suffixes[1]}", [same])]
    later = [_write(tmp_path / f"three{suffixes[0]}", [late]), _write(tmp_path / f"four{suffixes[1]}", [early])]
    if order == "reversed":
        files, later = files[::-1], later[::-1]
    db = str(tmp_path / "ties.duckdb")
    ingest_files(db, files, quiet=True)
    assert _status(db) == ("warning" if order == "forward" else "failure")  # equal times: the later file
    db = str(tmp_path / "times.duckdb")
    first = ingest_files(db, later, quiet=True)
    assert _status(db) == "success"  # the later activityDateTime, in either file
    again = ingest_files(db, later, quiet=True)  # a re-run changes nothing
    assert (again.loaded.new, again.loaded.updated) == (0, 0) and first.loaded.new == 1
    assert _status(db) == "success"


def test_a_later_load_never_replaces_a_copy_with_a_later_time(tmp_path):
    """Across loads: a copy dated earlier than the stored one is ignored; one as late or later replaces it."""
    early, late, same = _copies(tmp_path)
    db = str(tmp_path / "loads.duckdb")
    ingest_files(db, [_write(tmp_path / "late.json", [late])], quiet=True)
    result = ingest_files(db, [_write(tmp_path / "early.json", [early])], quiet=True)
    assert _status(db) == "success" and result.loaded.updated == 0
    newer = copy.deepcopy(late)
    newer["provisioningStatusInfo"] = {"status": "failure", "errorInformation": None}
    result = ingest_files(db, [_write(tmp_path / "newer.json", [newer])], quiet=True)  # same time, later load
    assert _status(db) == "failure" and result.loaded.updated == 1
