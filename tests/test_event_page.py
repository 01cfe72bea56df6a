"""Issue 23 items 1, 2 and 6: the Event page shows what the stored raw JSON (and the file it came from) holds, on
the demo store and on a store of the real samples; the tables' links point at the identity and event their row
names (checked against a plain query); a picked cycle is in the URL and restored from it; the Event page's
queries equal their plain references on both stores."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import duckdb
import pytest

from ingest.file_ingest import ingest_files
from pages.common import md_text
from queries.db import release, run, run_sql
from queries.reference import EVENT_REFERENCES
from tests.test_app_pages import _app, _open

REAL = Path(__file__).parent / "data" / "real"
REAL_FILES = ["graph-docs-list-example2.json", "graph2otel-live-provisioning.json", "elastic-provisioninglogs-raw.log"]


def _records(path: Path) -> list[dict]:
    """The records of a sample file, read plainly (a Graph list, one JSON object, or one JSON per line)."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict):
        data = data.get("value", [data])
    out = []
    for record in data:
        for r in record.get("records", [record]) if isinstance(record, dict) else []:
            out.append(r)
    return out


def _get(obj: dict, key: str):
    """``obj[key]`` case-insensitively (diagnostic settings write PascalCase)."""
    return next((v for k, v in obj.items() if k.lower() == key.lower()), None) if isinstance(obj, dict) else None


def _file_steps(record: dict) -> tuple[str, list[str]]:
    event = _get(record, "properties") if isinstance(_get(record, "properties"), dict) else record
    return str(_get(event, "id")), [_get(s, "description") for s in _get(event, "provisioningSteps") or []]


@pytest.fixture(scope="module")
def real_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("real") / "real.duckdb"
    outcome = ingest_files(str(db), [str(REAL / f) for f in REAL_FILES], quiet=True)
    assert outcome.loaded.new >= 3
    return db


def _event_page(db, monkeypatch, event_id: str):
    return _open(_app(db, monkeypatch, id=event_id), "event")


def _shown_steps(at) -> list[str]:
    """The step descriptions the page shows: the markdown right after each numbered step header."""
    texts = [m.value for m in at.markdown]
    return [texts[i + 1] for i, t in enumerate(texts) if t.startswith(":material/") and "**" in t and ". " in t]


def test_real_samples_event_page_shows_the_files_steps(real_db, monkeypatch):
    """Each event of the real samples, whatever its wrapper (Graph list, live record, PascalCase Event Hub
    records): the page shows the source file's step descriptions, in order."""
    expected: dict[str, list[str]] = {}
    for name in REAL_FILES:
        for record in _records(REAL / name):
            event_id, descriptions = _file_steps(record)
            if event_id in expected and not descriptions:
                continue
            expected[event_id] = descriptions
    with duckdb.connect(str(real_db), read_only=True) as con:
        stored = {r[0]: r[1] for r in con.execute("SELECT id, raw FROM events").fetchall()}
    release(str(real_db))
    checked = 0
    for event_id, raw in stored.items():
        from_raw = [s.get("description") for s in json.loads(raw).get("provisioningSteps") or []]
        at = _event_page(real_db, monkeypatch, event_id)
        assert _shown_steps(at) == [md_text(d) for d in from_raw], event_id
        if event_id in expected and expected[event_id]:
            # the last record of an id wins in the store; its file's steps are the stored ones
            assert from_raw in [d for i, d in (_file_steps(r) for n in REAL_FILES for r in _records(REAL / n))
                                if i == event_id], event_id
            checked += 1
    assert checked >= 3


def test_demo_event_page_shows_error_steps_properties_and_scim(demo_db, monkeypatch):
    with duckdb.connect(str(demo_db), read_only=True) as con:
        event_id, raw, code = con.execute(
            "SELECT e.id, e.raw, e.error_code FROM events e JOIN correlation c ON c.event_id = e.id "
            "WHERE e.status = 'failure' AND c.request_id IS NOT NULL GROUP BY ALL ORDER BY count(*) DESC, e.id "
            "LIMIT 1").fetchone()
        requests = con.execute("SELECT count(DISTINCT request_id) FROM correlation WHERE event_id = ? "
                               "AND request_id IS NOT NULL", [event_id]).fetchone()[0]
    release(str(demo_db))
    event = json.loads(raw)
    at = _event_page(demo_db, monkeypatch, event_id)
    assert _shown_steps(at) == [md_text(s["description"]) for s in event["provisioningSteps"]]
    assert any(code in m.value for m in at.markdown)
    mods = [d.value for d in at.dataframe if "old_value" in d.value.columns]
    if event.get("modifiedProperties"):
        assert mods[0]["property"].tolist() == [m["displayName"] for m in event["modifiedProperties"]]
    scim = [d.value for d in at.dataframe if "request_id" in d.value.columns]
    assert scim and len(scim[0]) == requests
    assert [c.value for c in at.code][-1] == raw or json.loads([c.value for c in at.code][-1]) == event
    # the cycle id links to the cycle's events, the identity to its timeline
    cycle_links = [m.value for m in at.markdown if m.value.startswith("**Cycle:**")]
    assert f"cycles?cycle={event['cycleId']}" in cycle_links[0]


def test_an_unknown_event_id_says_so(demo_db, monkeypatch):
    at = _event_page(demo_db, monkeypatch, "no-such-event")
    assert any("no event with the id" in w.value and "no\\-such\\-event" in w.value for w in at.warning)


@pytest.mark.parametrize("store", ["demo", "real"])
def test_event_queries_equal_their_references(demo_db, real_db, store):
    db = str(demo_db if store == "demo" else real_db)
    with duckdb.connect(db, read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT id FROM events ORDER BY status, id LIMIT 40").fetchall()]
    release(db)
    assert ids
    for event_id in [*ids, "no-such-event"]:
        for name, reference in EVENT_REFERENCES.items():
            got = run(db, name, event_id=event_id)
            release(db)
            with duckdb.connect(db, read_only=True) as con:
                con.execute("SET TimeZone = 'UTC'")
                want = run_sql(con, reference, {"event_id": event_id})
            assert list(got.columns) == list(want.columns), name
            clean = lambda f: f.astype(object).where(f.notna(), None).values.tolist()  # noqa: E731
            assert clean(got) == clean(want), (name, event_id)


def _params(url: str) -> dict[str, list[str]]:
    return parse_qs(urlparse(url).query)


def test_failure_rows_link_to_their_identity_and_event(demo_db, monkeypatch):
    at = _open(_app(demo_db, monkeypatch, job=""), "failures")
    frame = next(d.value for d in at.dataframe if {"event", "identity", "id"} <= set(d.value.columns))
    with duckdb.connect(str(demo_db), read_only=True) as con:
        for row in frame.head(25).itertuples():
            upn, source_id = con.execute("SELECT source_upn, source_id FROM events WHERE id = ?",
                                         [row.id]).fetchone()
            identity, event = _params(row.identity), _params(row.event)
            assert urlparse(row.identity).path == "identity" and urlparse(row.event).path == "event"
            assert identity["q"] == [upn or source_id] and identity["pick"] == [source_id]
            assert event["id"] == [row.id]
            assert identity["range"] == ["all"] and event["range"] == ["all"]  # the filters go along
    release(str(demo_db))


def test_an_identity_link_picks_that_identity(demo_db, monkeypatch):
    with duckdb.connect(str(demo_db), read_only=True) as con:
        upn, source_id = con.execute("SELECT source_upn, source_id FROM events WHERE status = 'failure' "
                                     "AND source_upn LIKE '%@%' ORDER BY id LIMIT 1").fetchone()
    release(str(demo_db))
    domain = upn.split("@")[1]  # many identities match the domain: the link's pick chooses this one
    at = _open(_app(demo_db, monkeypatch, q=domain, pick=source_id), "identity")
    assert at.selectbox(key="identity_pick").value == source_id
    timeline = next(d.value for d in at.dataframe if "event" in d.value.columns)
    entra = timeline[timeline["source"] == "entra"]
    assert entra["event"].map(lambda u: _params(u)["id"][0]).tolist() == entra["ref"].tolist()


def test_a_cycle_in_the_url_is_picked_and_kept(demo_db, monkeypatch):
    with duckdb.connect(str(demo_db), read_only=True) as con:
        cycle_id = con.execute("SELECT cycle_id FROM events GROUP BY cycle_id ORDER BY min(activity_time), cycle_id "
                               "LIMIT 1").fetchone()[0]
        ids = {r[0] for r in con.execute("SELECT id FROM events WHERE cycle_id = ?", [cycle_id]).fetchall()}
    release(str(demo_db))
    at = _open(_app(demo_db, monkeypatch, cycle=cycle_id), "cycles")
    assert at.selectbox(key="cycle_pick").value == cycle_id
    assert at.query_params["cycle"] == [cycle_id] or at.query_params["cycle"] == cycle_id
    events = next(d.value for d in at.dataframe if {"event", "id"} <= set(d.value.columns))
    assert set(events["id"]) == ids


@pytest.mark.parametrize("page_name", ["skipped", "violations"])
def test_identity_links_of_the_skipped_and_violations_tables(demo_db, monkeypatch, page_name):
    """Each row's Identity link searches a name this object really went by (a plain query over the events) and, where
    the row has the object id, picks it; the filters go along."""
    at = _open(_app(demo_db, monkeypatch), page_name)
    frames = [d.value for d in at.dataframe if {"identity", "source_id"} <= set(d.value.columns)]
    assert frames
    with duckdb.connect(str(demo_db), read_only=True) as con:
        for frame in frames:
            for row in frame.head(20).itertuples():
                params = _params(row.identity)
                names = {r[0] for r in con.execute(
                    "SELECT source_upn FROM events WHERE source_id = ? UNION SELECT user_name FROM events "
                    "WHERE source_id = ? UNION SELECT source_id FROM events WHERE source_id = ?",
                    [row.source_id] * 3).fetchall()}
                assert params["q"][0] in names, (row.identity, names)
                if page_name == "skipped":
                    assert params["pick"] == [row.source_id]
                assert params["range"] == ["all"]
    release(str(demo_db))
