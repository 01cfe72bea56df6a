"""How the pull stages a Graph page (issue 7 B1): a page whose events are all kept goes to the staging file
as the body Graph sent, with the page's label in front, unless the body has a top-level "pos" of its own
(the label's key); then its events are staged one by one. Either way every event lands with its position."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace

import simdjson

from ingest.graph.pull import ScopePull
from ingest.loading import StagingFile, load_staged
from ingest.store import Store

START = datetime(2026, 10, 1, tzinfo=timezone.utc)
END = datetime(2026, 10, 2, tzinfo=timezone.utc)


def _load_page(tmp_path, name: str, page: dict) -> tuple[bool, list, list]:
    body = json.dumps(page, separators=(",", ":")).encode()
    doc = simdjson.Parser().parse(body)
    staging = StagingFile(str(tmp_path))
    counters = {"pages": 1, "read": 0, "other_sp": 0}
    pull = SimpleNamespace(sp=None, scope="default", feed=SimpleNamespace(wanted=lambda event: True))
    ScopePull._stage(pull, doc["value"], staging, START, END, 1, counters, body, own_pos="pos" in doc)
    paged = staging.paged
    try:
        with Store.open(str(tmp_path / f"{name}.duckdb")) as store:
            load_staged(store, staging, run_id=store.start_run("graph"))
            rejects = store.con.execute("SELECT file, position FROM ingest_rejects").fetchall()
            raws = [json.loads(r[0]) for r in
                    store.con.execute("SELECT raw::VARCHAR FROM events ORDER BY id").fetchall()]
    finally:
        staging.discard()
    return paged, rejects, raws


def test_a_page_is_staged_whole_or_event_by_event_and_positions_hold(tmp_path, sim):
    events = [dict(e, activityDateTime="2026-10-01T10:00:00Z") for e in sim.events[:3]]
    events[1] = {k: v for k, v in events[1].items() if k != "id"}  # rejected, with its position
    page = {"@odata.context": "x", "value": events}
    whole, whole_rejects, whole_raws = _load_page(tmp_path, "whole", page)
    split, split_rejects, split_raws = _load_page(tmp_path, "split", {"pos": "theirs", **page})
    label = "graph default 2026-10-01T00:00:00Z page 1"
    assert whole and not split
    assert whole_rejects == split_rejects == [(label, "value[1]")]
    kept = sorted([events[0], events[2]], key=lambda e: e["id"])
    assert whole_raws == split_raws == kept
