"""Graph pages are parsed lazily (simdjson) and each event's bytes staged as they are: the stored raw JSON
is the event the server sent, a body simdjson refuses still loads (orjson reads it), a broken body is
retried, never half-loaded."""

from __future__ import annotations

import json

import duckdb
import orjson
import pytest
import simdjson

from ingest import exitcodes
from ingest.graph.client import parse_lazily
from simulator.graph_server import FakeGraphServer, GraphData
from tests.test_graph_pull import SINCE, TOKEN, UNTIL, pull


def test_parse_lazily_reads_what_orjson_reads():
    page = b'{"value":[{"a":"\\u00e9","n":1.50,"l":[1,{"b":null}]},3,"s",null],"@odata.nextLink":"http://x/n"}'
    doc = parse_lazily(page)
    assert isinstance(doc, simdjson.Object)
    assert [orjson.loads(e.mini) if hasattr(e, "mini") else e for e in doc["value"]] == orjson.loads(page)["value"]
    assert doc.get("@odata.nextLink") == "http://x/n"

    big = b'{"value":[{"id":"x","n":123456789012345678901234567890}]}'  # beyond 64 bits: simdjson refuses
    assert parse_lazily(big) == orjson.loads(big)

    with pytest.raises(orjson.JSONDecodeError):
        parse_lazily(b'{"value":[{"id":"x"},')


def _in_window(sim) -> list[dict]:
    return [e for e in sim.events if SINCE <= e["activityDateTime"] < UNTIL]


def test_stored_raw_is_the_event_the_server_sent(sim, tmp_path, monkeypatch):
    """Every event's stored JSON equals the simulator's event, and a page with a > 64-bit number (simdjson
    refuses the whole page) still loads completely through the orjson fallback."""
    data = GraphData.from_simulation(sim)
    odd = len(data.blobs) // 2
    odd_id = data.events[odd]["id"]
    data.blobs[odd] = data.blobs[odd][:-1] + b',"hugeCounter":123456789012345678901234567890}'
    db = tmp_path / "g.duckdb"
    with FakeGraphServer(data, token=TOKEN, max_top=999) as server:
        out = pull(monkeypatch, server, db)
    assert out.exit_code == exitcodes.OK, out

    con = duckdb.connect(str(db), read_only=True)
    stored = {i: json.loads(raw) for i, raw in con.execute("SELECT id, raw::VARCHAR FROM events").fetchall()}
    con.close()
    expected = {e["id"]: e for e in _in_window(sim)}
    assert stored.keys() == expected.keys()
    huge = stored.pop(odd_id)
    assert huge.pop("hugeCounter") == pytest.approx(1.2345678901234568e29)  # orjson reads it as a float
    assert huge == expected.pop(odd_id)
    assert stored == expected
