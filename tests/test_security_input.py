"""Hostile input: property tests (hypothesis) for the Graph event normaliser through the store, the "Web
Response" regexes, the SCIM line and CSV parsers and the mapping loader; SQL-injection payloads in every
dashboard filter and search box; names with quotes, control characters, RTL text, emoji and formula
prefixes that must render and export safely."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import shutil
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from ingest.loading import StagingFile, load_staged
from ingest.scim.mapping import MappingError, load_mapping
from ingest.scim.parse import LineRejected, clean_line, decode_csv_line, decode_json_line, normalise
from ingest.store import Store
from simulator.texts import custom_reason
from tests import reliability_harness as h
from tests.conftest import ROOT, run_cli

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
_scalar = st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | _text
_json = st.recursive(_scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
                     max_leaves=8)

_SIM: dict = {}


def _base_events() -> list[dict]:
    if "events" not in _SIM:
        from simulator import generate

        _SIM["events"] = generate(seed=3, users=25, days=2).events[:60]
    return _SIM["events"]


def _store() -> Store:
    if "store" not in _SIM:
        _SIM["store"] = Store.open(":memory:")
    return _SIM["store"]


def _mutate(event: dict, data) -> dict:
    """Random values at random places of a real event (id and activityDateTime kept valid)."""
    event = copy.deepcopy(event)
    for _ in range(data.draw(st.integers(0, 6))):
        node = event
        path = []
        while isinstance(node, dict) and node and data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(node)))
            if not path and key in ("id", "activityDateTime"):
                break
            path.append(key)
            if not isinstance(node[key], dict):
                break
            node = node[key]
        if not path:
            continue
        parent = event
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()):
            parent[path[-1]] = data.draw(_json)
        else:
            del parent[path[-1]]
    return event


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_mutated_graph_events_load_or_are_rejected_never_lost(data):
    store = _store()
    base = _base_events()
    run = store.start_run("prop")
    tag = hashlib.sha1(str(run).encode()).hexdigest()[:8]
    valid, junk, lines = [], 0, []
    for i in range(data.draw(st.integers(1, 12))):
        kind = data.draw(st.sampled_from(["mutated", "mutated", "no id", "bad time", "not an object", "random"]))
        event = _mutate(data.draw(st.sampled_from(base)), data)
        event["id"] = f"{tag}-{i}"
        if kind == "no id":
            event.pop("id")
            junk += 1
        elif kind == "bad time":
            event["activityDateTime"] = data.draw(st.sampled_from(["", "yesterday", "2026-13-45T99:00:00Z", None, 7]))
            junk += 1
        elif kind == "not an object":
            event = data.draw(st.lists(_scalar, max_size=3) | _text)
            junk += 1
        elif kind == "random":
            event = data.draw(st.dictionaries(_text.filter(lambda k: k not in ("id", "activityDateTime")), _json,
                                              max_size=4))
            junk += 1
        if kind == "mutated":
            valid.append(event["id"])
        lines.append(json.dumps({"pos": f"prop#{i}", "raw": event}) + "\n")
    staging = StagingFile()
    try:
        staging.write("".join(lines).encode())
        result = load_staged(store, staging, run_id=run)
    finally:
        staging.discard()
    stored = {r[0] for r in store.con.execute("SELECT id FROM events WHERE id LIKE ?", [f"{tag}-%"]).fetchall()}
    assert stored == set(valid)
    assert result.invalid == junk
    assert store.con.execute("SELECT count(*) FROM ingest_rejects WHERE run_id = ?", [run]).fetchone()[0] == junk


_STATUSES = [400, 401, 409, 429, 500]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(_STATUSES), st.none() | st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC", min_size=1,
                                                      max_size=20),
       _text, st.booleans(), st.integers(0, 99), _text)
def test_web_response_parser_recovers_status_type_and_detail(status, scim_type, detail, numeric, retried, noise):
    store = _store()
    run = store.start_run("prop")
    event = dict(_base_events()[0], id=f"wr-{run}")
    reason = custom_reason(status, scim_type, detail, numeric, retried, "2026-11-01T10:00:00.0000000Z")
    event["provisioningStatusInfo"] = {"status": "failure", "errorInformation": {"reason": reason + noise}}
    store.load_events("SELECT ?::JSON AS raw, 'p' AS pos", [json.dumps(event)], run_id=run)
    got = store.con.execute("SELECT http_status, scim_type, scim_detail, retry_count FROM events WHERE id = ?",
                            [event["id"]]).fetchone()
    detail_json = json.dumps(detail)[1:-1]
    assert got[0] == status and got[1] == scim_type and got[3] == retried
    assert got[2] == (detail_json or None)


@settings(max_examples=50, deadline=None)
@given(_text.map(lambda t: t.encode()), st.integers(0, 400), st.binary(max_size=4))
def test_corrupted_audit_lines_are_loaded_or_rejected(noise, where, insert):
    line = json.dumps({"ts": "2026-11-02T09:00:02.010Z", "request_id": "r-1", "method": "PATCH",
                       "path": "/scim/v2/Users/u_1", "status": 200, "user_name": "a@b.c"}).encode()
    where = min(where, len(line))
    for bad in (line[:where] + insert + line[where:], line[:where] + noise, line[:where] + line[where + 1:]):
        try:
            normalise(decode_json_line(clean_line(bad)))
        except LineRejected as exc:
            assert str(exc)


@settings(max_examples=50, deadline=None)
@given(st.lists(_text, min_size=1, max_size=6), st.binary(max_size=80))
def test_random_csv_rows_are_loaded_or_rejected(header, row):
    try:
        normalise(decode_csv_line(clean_line(row), header))
    except LineRejected as exc:
        assert str(exc)


_mapping_value = _json | st.sampled_from(["$.a", "$['x.y'][0]", "$..", "$[", "ts", "ms", "s", "csv", "json"])


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.sampled_from(["format", "fields", "constants", "options", "name", "zzz"]),
                       _mapping_value | st.dictionaries(st.sampled_from(["ts", "status", "path", "bogus",
                                                                         "duration_unit", "unmapped",
                                                                         "ts_format"]), _mapping_value,
                                                        max_size=4), max_size=4),
       st.booleans())
def test_random_mapping_files_load_or_fail_clearly(tmp_path_factory, doc, as_toml):
    path = tmp_path_factory.mktemp("map") / ("m.toml" if as_toml else "m.json")
    path.write_text(json.dumps(doc), encoding="utf-8")  # JSON text is mostly invalid TOML: both paths run
    try:
        mapping = load_mapping(path)
    except MappingError as exc:
        assert str(exc)
    else:
        mapping.extract({"ts": "2026-01-01T00:00:00Z", "a": 1})


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_as_a_mapping_file(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("map") / "m.toml"
    path.write_bytes(data)
    try:
        load_mapping(path)
    except MappingError:
        pass


# ------------------------------------------------------------------------------- the dashboard
INJECTIONS = ["' OR '1'='1", "'; DROP TABLE events; --", "x') UNION SELECT key, value FROM meta --"]


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _counts(db) -> dict:
    tables = [r[0] for r in h.query(db, "SELECT table_name FROM information_schema.tables WHERE table_schema='main' "
                                        "AND table_type = 'BASE TABLE'")]
    return {t: h.query(db, f'SELECT count(*) FROM "{t}"')[0][0] for t in tables}


@pytest.mark.parametrize("payload", INJECTIONS)
def test_sql_injection_in_filters_and_search_changes_nothing(payload, demo_db, tmp_path, monkeypatch):
    db = tmp_path / "copy.duckdb"
    shutil.copy(demo_db, db)
    before, counts = _digest(db), _counts(db)
    monkeypatch.setenv("PROVLENS_DB", str(db))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for key in ("range", "from", "to", "sp", "job", "q", "dataset", "type", "status", "action", "error", "skip",
                "identity", "cycle", "change"):
        at.query_params[key] = payload
    at.run()
    assert not at.exception, at.exception
    at.switch_page("pages/events.py").run()  # identity, cycle and change reach SQL: bound, so they match nothing
    assert not at.exception, at.exception
    assert any("No event matches" in m.value for m in at.info), [m.value for m in at.info]
    at.switch_page("pages/identity.py").run()
    assert not at.exception, at.exception
    assert any("Nobody matches" in m.value for m in at.info), [m.value for m in at.info]
    at.switch_page("pages/export.py").run()
    assert not at.exception, at.exception
    assert _digest(db) == before and _counts(db) == counts


HOSTILE = ["O'Brien \"the\" `admin`", "tab\there\nnewline\r\x07bell", "\u202eevil\u202c \u05e9\u05dc\u05d5\u05dd",
           "emoji \U0001F600\U0001F469\u200d\U0001F4BB", "=HYPERLINK(\"http://evil.example\",\"x\")", "+1-2",
           "-cmd", "@SUM(A1)", "\\'; --", "<script>alert(1)</script>"]


@pytest.fixture(scope="module")
def hostile_db(sim, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    events = copy.deepcopy(sim.events)
    end = max(datetime.fromisoformat(e["activityDateTime"].replace("Z", "+00:00")) for e in events)
    for i, name in enumerate(HOSTILE):
        e = events[i * 7]
        e["sourceIdentity"]["displayName"] = name
        e["sourceIdentity"].setdefault("details", {})["UserPrincipalName"] = f"{name}@contoso.com"
        e["modifiedProperties"] = [{"displayName": "userName", "oldValue": None, "newValue": f"{name}@contoso.com"}]
        e["activityDateTime"] = (end - timedelta(minutes=i)).astimezone(timezone.utc).isoformat()
    path = root / "events.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    db = root / "hostile.duckdb"
    run_cli("ingest", "files", "--db", str(db), "-q", str(path), check=True)
    return db


def test_hostile_names_render_on_every_page(hostile_db, monkeypatch):
    monkeypatch.setenv("PROVLENS_DB", str(hostile_db))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["range"] = "all"
    at.query_params["q"] = "evil"
    at.run()
    shown: set[str] = set()
    for page in ["cycles", "failures", "skipped", "violations", "identity", "export"]:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
        if page == "identity":
            shown = {str(v) for df in at.dataframe for v in df.value.to_numpy().ravel()}
    assert any("\u202eevil" in v for v in shown)  # the identity search found the RTL name


def test_hostile_names_export_as_neutralised_csv(hostile_db, tmp_path):
    out = tmp_path / "events.csv"
    run_cli("queries", "export", "events", "--db", str(hostile_db), "--out", str(out), check=True)
    rows = list(csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8"), newline="")))
    cells = [r[c] for r in rows for c in ("source_name", "user_name", "source_upn") if c in r and r[c]]
    for name in HOSTILE:
        assert any(name.lstrip("=+-@") in c for c in cells), name
    assert all(not c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells)
    assert any(c.startswith("'=HYPERLINK") for c in cells)
