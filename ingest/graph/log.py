"""Run events through Python's ``logging``: the ``provlens.run`` logger, printed as text lines or JSON lines.

Every event (slice committed, retry, throttled, summary) is a ``logging.LogRecord`` of the ``provlens.run`` logger
with two attributes of its own: ``record.event`` (its name, e.g. ``scope_done``) and ``record.fields`` (a dict:
scope, run_id, pages, ...); a summary also has ``record.summary = True``. So any standard handler (a file, syslog,
an OpenTelemetry or other exporter) attached to ``provlens.run``, ``provlens`` or the root logger receives them.

A :class:`RunLog` prints its own events to its stream (stderr): ``--log-format json`` prints every event as one
JSON line (``ts``, ``level``, ``event``, ``message``, then the fields: :class:`JsonLineFormatter`); the text
format prints warnings, errors and summaries only (a progress bar shows the rest on a terminal).

Callers never pass secrets here; URLs carry only the query, and the credentials of any URL in a message or field
(``https://user:pw@host``) are replaced by ``REDACTED`` before the record is made, so no handler ever sees them.

The JSON formatter is a few lines over orjson (already a dependency) rather than python-json-logger: the lines
keep exactly the fields, order and time format they had before they went through ``logging``, which
python-json-logger would need a rename, a level mapping and a time format override to produce.
"""

from __future__ import annotations

import logging
import re
import sys
import weakref
from datetime import datetime, timezone
from typing import Any, TextIO

import orjson

LEVELS = ("debug", "info", "warning", "error")
LOGGER_NAME = "provlens.run"
_LEVEL_NUMBERS = {"debug": logging.DEBUG, "info": logging.INFO, "summary": logging.INFO,
                  "warning": logging.WARNING, "error": logging.ERROR}

logger = logging.getLogger(LOGGER_NAME)
if logger.level == logging.NOTSET:  # every event reaches the handlers; each handler picks what it shows
    logger.setLevel(logging.DEBUG)

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


def _level_name(record: logging.LogRecord) -> str:
    return record.levelname.lower()


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (UTC, milliseconds, ``Z``), ``level``, ``event``, ``message`` (when the
    event has one), then the event's fields. Records of other loggers get ``event`` = the logger's name."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, timezone.utc)
        out: dict[str, Any] = {"ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                               "level": _level_name(record), "event": getattr(record, "event", record.name)}
        message = record.getMessage()
        if message and message != out["event"]:
            out["message"] = message
        out.update(getattr(record, "fields", None) or {})
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    """``warning: ...`` / ``error: ...`` for problems, the bare message for a summary."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{_level_name(record)}: {message}"
        return message


def _text_worthy(record: logging.LogRecord) -> bool:
    """The text format shows warnings, errors and summaries only."""
    return record.levelno >= logging.WARNING or bool(getattr(record, "summary", False))


class _OwnRecords(logging.Filter):
    """A RunLog's handler prints the records that RunLog made (other RunLogs in the process have their own)."""

    def __init__(self, owner: int):
        super().__init__()
        self.owner = owner

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "provlens_log", None) == self.owner


def make_handler(fmt: str, stream: TextIO | None = None) -> logging.Handler:
    """A stream handler printing records the way ``--log-format`` says (``text`` or ``json``)."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format {fmt!r}: text or json")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else TextFormatter())
    if fmt == "text":
        handler.addFilter(_text_worthy)
    return handler


class RunLog:
    """The events of one command, sent to the ``provlens.run`` logger and printed to ``stream`` in ``fmt``."""

    def __init__(self, fmt: str = "text", stream: TextIO | None = None):
        if fmt not in ("text", "json"):
            raise ValueError(f"log format {fmt!r}: text or json")
        self.fmt = fmt
        self.stream = stream or sys.stderr
        self._id = id(self)
        handler = make_handler(fmt, self.stream)
        handler.addFilter(_OwnRecords(self._id))
        logger.addHandler(handler)
        # The handler goes with the RunLog (it holds no reference to it): tests make many.
        weakref.finalize(self, logger.removeHandler, handler)

    @property
    def is_json(self) -> bool:
        return self.fmt == "json"

    def event(self, name: str, message: str = "", *, level: str = "info", **fields: Any) -> None:
        """Record one event; in text mode only warnings, errors and ``level='summary'`` are printed."""
        message = redact_url_credentials(message)
        fields = {k: redact_url_credentials(v) for k, v in fields.items()}
        logger.log(_LEVEL_NUMBERS.get(level, logging.INFO), "%s", message or name,
                   extra={"event": name, "fields": fields, "summary": level == "summary", "provlens_log": self._id})

    def info(self, name: str, message: str = "", **fields: Any) -> None:
        self.event(name, message, level="info", **fields)

    def warning(self, name: str, message: str, **fields: Any) -> None:
        self.event(name, message, level="warning", **fields)

    def error(self, name: str, message: str, **fields: Any) -> None:
        self.event(name, message, level="error", **fields)

    def summary(self, name: str, message: str, **fields: Any) -> None:
        self.event(name, message, level="summary", **fields)
