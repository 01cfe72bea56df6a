"""TEMPORARY, until the normaliser of issue 22 item 1 is merged (worktree wt-22a): diagnostic-settings records
(``{"time", "category": "ProvisioningLogs", "properties": {...}}``, one per line) unwrapped to their ``properties``,
the only form today's ``ingest files`` reads.

At merge, the lead makes :func:`for_file_ingest` return its argument unchanged (the file ingest's normaliser then
reads the records as the blob holds them, envelope and PascalCase keys included) and deletes the rest of this
module. Nothing else in the blob source parses a record's contents.
"""

from __future__ import annotations

import orjson


def for_file_ingest(path: str) -> str:
    """The spool file at ``path`` rewritten so ``ingest files`` reads it: every line that is a diagnostic-settings
    record becomes its ``properties``; any other line (and a line that is not JSON) stays as it is, so line numbers
    and rejects are those of the blob."""
    with open(path, "rb") as fh:
        lines = fh.read().split(b"\n")
    out = []
    for line in lines:
        try:
            record = orjson.loads(line) if line.strip() else None
        except orjson.JSONDecodeError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("properties"), dict) \
                and "id" not in record and "Id" not in record:
            line = orjson.dumps(record["properties"]) + (b"\r" if line.endswith(b"\r") else b"")
        out.append(line)
    with open(path, "wb") as fh:
        fh.write(b"\n".join(out))
    return path
