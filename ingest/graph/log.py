"""Run events for people and for log collectors: text lines, or one JSON object per line.

``--log-format json`` prints every event (slice committed, retry, throttled, summary) as one JSON line
on stderr; the text format prints warnings and summaries only (a progress bar shows the rest on a
terminal). Callers never pass secrets here; URLs carry only the query.
"""

from __future__ import annotations

import sys
import threading
from datetime import datetime, timezone
from typing import Any, TextIO

import orjson

LEVELS = ("debug", "info", "warning", "error")


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
