"""Run events for people and for log collectors: text lines, or one JSON object per line.

``--log-format json`` prints every event (slice committed, retry, throttled, summary) as one JSON line
on stderr; the text format prints warnings and summaries only (a progress bar shows the rest on a
terminal). Callers never pass secrets here; URLs carry only the query, and the credentials of any URL in a
message or field (``https://user:pw@host``) are replaced by ``REDACTED`` here.
"""

from __future__ import annotations

import re
import sys
import threading
from datetime import datetime, timezone
from typing import Any, TextIO

import orjson

LEVELS = ("debug", "info", "warning", "error")

# user:password@ (or a token as the user) in any URL: never printed (issue 27: --graph-url http://user:pw@host
# was echoed in the graph_start line).
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s'\"]*@")


def redact_url_credentials(value: Any) -> Any:
    """``value`` (text, or lists/dicts of it) with the credentials of every URL in it replaced by ``REDACTED``."""
    if isinstance(value, str):
        return _URL_USERINFO.sub(r"\1REDACTED@", value) if "@" in value else value
    if isinstance(value, dict):
        return {k: redact_url_credentials(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_url_credentials(v) for v in value]
    return value


class RunLog:
    def __init__(self, fmt: str = "text", stream: TextIO | None = None):
        if fmt not in ("text", "json"):
            raise ValueError(f"log format {fmt!r}: text or json")
        self.fmt = fmt
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()  # the slice loader thread logs too: one whole line at a time

    def _write(self, line: str) -> None:
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    @property
    def is_json(self) -> bool:
        return self.fmt == "json"

    def event(self, name: str, message: str = "", *, level: str = "info", **fields: Any) -> None:
        """Record one event; in text mode only warnings, errors and ``level='summary'`` are printed."""
        message = redact_url_credentials(message)
        fields = {k: redact_url_credentials(v) for k, v in fields.items()}
        if self.is_json:
            record = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                      "level": "info" if level == "summary" else level, "event": name}
            if message:
                record["message"] = message
            record.update(fields)
            self._write(orjson.dumps(record, default=str).decode())
            return
        if level in ("warning", "error"):
            self._write(f"{level}: {message or name}")
        elif level == "summary":
            self._write(message or name)

    def info(self, name: str, message: str = "", **fields: Any) -> None:
        self.event(name, message, level="info", **fields)

    def warning(self, name: str, message: str, **fields: Any) -> None:
        self.event(name, message, level="warning", **fields)

    def error(self, name: str, message: str, **fields: Any) -> None:
        self.event(name, message, level="error", **fields)

    def summary(self, name: str, message: str, **fields: Any) -> None:
        self.event(name, message, level="summary", **fields)
