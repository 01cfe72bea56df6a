"""`write`: puts a Simulation on disk as Graph pages, NDJSON files and the ground-truth JSON."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .model import Simulation

GRAPH = "https://graph.microsoft.com/v1.0"
CONTEXT = f"{GRAPH}/$metadata#auditLogs/provisioning"


def _line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _ndjson(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(_line(row) + "\n")


def _skiptoken(page_no: int, last_id: str) -> str:
    return hashlib.sha256(f"provlens-sim:{page_no}:{last_id}".encode()).hexdigest()


def write(sim: Simulation, out_dir: str | Path, page_size: int = 500) -> dict:
    """Write every file; returns {"graph_pages": [...], "events", "job_snapshots", "scim_audit", "truth"}."""
    if page_size < 1:
        raise ValueError("page_size must be positive")
    out = Path(out_dir)
    graph = out / "graph"
    graph.mkdir(parents=True, exist_ok=True)
    for stale in graph.glob("page-*.json"):
        stale.unlink()
    chunks = [sim.events[i:i + page_size] for i in range(0, len(sim.events), page_size)] or [[]]
    pages = []
    for n, chunk in enumerate(chunks, 1):
        page: dict = {"@odata.context": CONTEXT, "value": chunk}
        if n < len(chunks):
            token = _skiptoken(n, chunk[-1]["id"])
            page["@odata.nextLink"] = f"{GRAPH}/auditLogs/provisioning?$top={page_size}&$skiptoken={token}"
        path = graph / f"page-{n:05d}.json"
        path.write_text(json.dumps(page, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        pages.append(path)
    paths = {"graph_pages": pages, "events": out / "events.ndjson",
             "job_snapshots": out / "job-snapshots.ndjson", "scim_audit": out / "scim-audit.jsonl",
             "directory_audits": out / "directory-audits.ndjson", "truth": out / "ground-truth.json"}
    _ndjson(paths["events"], sim.events)
    _ndjson(paths["job_snapshots"], sim.job_snapshots)
    _ndjson(paths["scim_audit"], sim.scim_records)
    _ndjson(paths["directory_audits"], sim.directory_audits)
    if sim.directory:  # issue 26: what the fake Graph serves to preflight
        paths["directory"] = out / "directory.json"
        paths["directory"].write_text(json.dumps(sim.directory, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    paths["truth"].write_text(json.dumps(sim.truth, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return paths
