"""Bulk mode for benchmarks: millions of events (and a proportional SCIM trail) in seconds.

A base tenant from :func:`simulator.generate` is replicated ``k`` times inside DuckDB: every replica
gets its own identities (event id, change id, source object id, SCIM target id, request id, and a
``.r<k>`` tag before every ``@`` so user names and emails stay unique and consistent between the two
logs), while tenant, apps, jobs, cycles and times stay the same — the shape of one big tenant whose
cycles each touch many users. Lines are written in the base tenant's (time) order with the replicas
interleaved, as Graph pages and a SCIM server's log deliver them (not one replica after another, which
made every stored row group span all days). Output: ``events.ndjson`` (Graph events, one per line),
``scim-audit.jsonl`` and ``bulk-truth.json`` (counts: the base truth times the replica count).
"""

from __future__ import annotations

import json
import math
import tempfile
from datetime import datetime
from pathlib import Path

import duckdb

from .generator import DEFAULT_END, generate
from .writer import write

_EVENT_SQL = """
SELECT replace(replace(replace(replace(
         CASE WHEN coalesce(tgt, '') <> '' THEN replace(s, '"' || tgt || '"', '"' || tgt || '-r' || k || '"')
              ELSE s END,
         id, id || '-r' || k), cid, cid || '-r' || k),
         '"' || src || '"', '"' || src || '-r' || k || '"'), '@', '.r' || k || '@')
FROM base_events, range($replicas) r(k) ORDER BY n, k
"""

_SCIM_SQL = """
SELECT replace(replace(replace(replace(s,
         '"' || rid || '"', '"' || rid || '-r' || k || '"'),
         CASE WHEN coalesce(res, '') <> '' THEN '"' || res || '"' ELSE '"\x01"' END,
         '"' || coalesce(res, '') || '-r' || k || '"'),
         CASE WHEN coalesce(ext, '') <> '' THEN '"' || ext || '"' ELSE '"\x01"' END,
         '"' || coalesce(ext, '') || '-r' || k || '"'),
         '@', '.r' || k || '@')
FROM base_scim, range($replicas) r(k) ORDER BY n, k
"""


def _copy_lines(con: duckdb.DuckDBPyConnection, sql: str, replicas: int, out: Path) -> None:
    # One JSON document per line, written by DuckDB as a single unquoted CSV column.
    con.execute(f"COPY ({sql}) TO '{str(out).replace(chr(39), chr(39) * 2)}' "
                "(FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\x01')", {"replicas": replicas})


def write_bulk(out_dir: str | Path, events: int, *, seed: int = 7, base_users: int = 200, days: int = 14,
               end: datetime | None = None, scim: bool = True) -> dict:
    """Write about ``events`` events (whole replicas of the base tenant) and return the bulk truth."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sim = generate(seed=seed, users=base_users, days=days, end=end or DEFAULT_END)
    base_total = sim.truth["events"]["total"]
    replicas = max(1, math.ceil(events / base_total))
    with tempfile.TemporaryDirectory(prefix="provlens-bulk-") as tmp:
        paths = write(sim, tmp)
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        con.execute("CREATE TABLE base_events AS SELECT row_number() OVER () AS n, json::VARCHAR AS s, "
                    "json->>'$.id' AS id, json->>'$.changeId' AS cid, json->>'$.sourceIdentity.id' AS src, "
                    "json->>'$.targetIdentity.id' AS tgt "
                    f"FROM read_json_objects('{paths['events']}', format = 'newline_delimited')")
        _copy_lines(con, _EVENT_SQL, replicas, out / "events.ndjson")
        if scim:
            con.execute("CREATE TABLE base_scim AS SELECT row_number() OVER () AS n, json::VARCHAR AS s, "
                        "json->>'$.request_id' AS rid, json->>'$.resource_id' AS res, "
                        "json->>'$.external_id' AS ext "
                        f"FROM read_json_objects('{paths['scim_audit']}', format = 'newline_delimited')")
            _copy_lines(con, _SCIM_SQL, replicas, out / "scim-audit.jsonl")
        con.close()
    truth = {
        "format": "provlens-bulk-truth/1", "seed": seed, "base_users": base_users, "days": days,
        "replicas": replicas, "events": base_total * replicas,
        "scim_requests": sim.truth["scim"]["total"] * replicas if scim else 0,
        "by_status": {k: v * replicas for k, v in sim.truth["events"]["by_status"].items()},
        "cycles": len(sim.truth["cycles"]),
        "apps": sim.truth["apps"],
    }
    (out / "bulk-truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth
