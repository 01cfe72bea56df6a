"""Where each blob is read from, and its new complete lines piece by piece.

Diagnostic-settings blobs are append blobs that keep growing long after their hour, and a name can be deleted
and written again (a lifecycle rule, a re-enabled setting). A blob's stored state says how far it was read
(the offset after its last complete line), what the listing said of it then (etag, creation time, size) and the
SHA-256 of the bytes just before that offset. A blob is read from the start when it is new, was created again
(another creation time), is shorter than the offset, or its bytes before the offset changed (another tail);
unchanged size and etag mean nothing to read. A last line without its line end is held back until it has one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ingest.blobs.client import Listed

TAIL = 1024  # bytes before the offset whose hash must match when a blob is read on
CHUNK = 16 * 1024 * 1024  # bytes read per request and per piece (a line longer than this is rejected)

Reader = Callable[[str, int, int], "bytes | None"]  # (name, offset, length) -> bytes, None when the blob changed


@dataclass
class Piece:
    """Complete lines of one blob (``data``, possibly empty) and the blob's state once they are loaded."""

    data: bytes
    first_line: int  # the blob's line number of data's first line
    state: dict[str, Any]
    too_long: list[tuple[int, int]]  # (line number, bytes) of lines over CHUNK, skipped


@dataclass
class Plan:
    action: str  # "new", "unchanged", "resume", "restart"
    reason: str = ""


def plan(listed: Listed, state: dict[str, Any] | None) -> Plan:
    if state is None:
        return Plan("new")
    if listed.creation_time is not None and state["creation_time"] is not None \
            and listed.creation_time != state["creation_time"]:
        return Plan("restart", "created again")
    if listed.size < state["byte_offset"]:
        return Plan("restart", f"shrank below the {state['byte_offset']} bytes read")
    if listed.size == state["size"] and listed.etag == state["etag"]:
        return Plan("unchanged")
    return Plan("resume")


def _digest(tail: bytes) -> str:
    return hashlib.sha256(tail).hexdigest()


def pieces(listed: Listed, state: dict[str, Any] | None, read: Reader, *,
           chunk: int = CHUNK) -> Iterator[Piece | str]:
    """The blob's new complete lines in pieces of at most ``chunk`` bytes, each with the state after it; the last
    piece's state is the blob's. Yields a text (why) instead when the bytes before the stored offset differ (the
    blob was replaced), then reads from the start. Stops early, without a state for the rest, when the blob changed
    while it was read (the next run reads it as it then is)."""
    decision = plan(listed, state)
    offset, line, tail = 0, 1, b""
    if decision.action == "resume":
        start = state["byte_offset"] - state["tail_len"]
        want = min(listed.size, state["byte_offset"] + chunk) - start
        data = read(listed.name, start, want)
        if data is None or len(data) != want:  # changed since it was listed: the next run reads it as it then is
            return
        if _digest(data[:state["tail_len"]]) == state["tail_sha256"]:
            offset, line, tail = state["byte_offset"], state["line_count"] + 1, data[:state["tail_len"]]
            yield from _split(listed, data[state["tail_len"]:], offset, line, tail, read, chunk)
            return
        yield "its bytes before the stored offset changed (replaced)"
    yield from _split(listed, None, 0, 1, b"", read, chunk)


class _Changed(Exception):
    """The blob changed while it was read."""


def _read(read: Reader, name: str, offset: int, length: int) -> bytes:
    data = read(name, offset, length) if length > 0 else b""
    if data is None or len(data) != length:
        raise _Changed
    return data


def _split(listed: Listed, data: bytes | None, offset: int, line: int, tail: bytes, read: Reader,
           chunk: int) -> Iterator[Piece]:
    """Complete lines from ``offset`` on (``data``: bytes already read from there)."""
    name, size = listed.name, listed.size

    def state_at(end: int, lines: int, last: bytes) -> dict[str, Any]:
        return {"blob": name, "etag": listed.etag, "creation_time": listed.creation_time, "size": size,
                "byte_offset": end, "line_count": lines, "tail_len": len(last), "tail_sha256": _digest(last)}

    try:
        while True:
            if data is None:
                data = _read(read, name, offset, min(size - offset, chunk))
            cut = data.rfind(b"\n") + 1
            if not cut and offset + len(data) < size:  # a full chunk without a line end: a line over ``chunk``
                end = _line_end(read, name, offset + len(data), size, chunk)
                if end is None:  # it is the last line and has no line end yet: held back
                    yield Piece(b"", line, state_at(offset, line - 1, tail), [])
                    return
                tail = _read(read, name, max(0, end - TAIL), end - max(0, end - TAIL))
                yield Piece(b"", line, state_at(end, line, tail), [(line, end - offset)])
                offset, line, data = end, line + 1, None
                continue
            complete = data[:cut]
            lines = complete.count(b"\n")
            tail = (tail + complete)[-TAIL:]
            offset += cut
            yield Piece(complete, line, state_at(offset, line + lines - 1, tail), [])
            line += lines
            if offset + (len(data) - cut) >= size:  # what is left is a partial last line (held back), or nothing
                return
            data = None
    except _Changed:
        return


def _line_end(read: Reader, name: str, pos: int, size: int, chunk: int) -> int | None:
    """The offset just after the next line end at or after ``pos``, or None when there is none before ``size``."""
    while pos < size:
        more = _read(read, name, pos, min(size - pos, chunk))
        nl = more.find(b"\n")
        if nl >= 0:
            return pos + nl + 1
        pos += len(more)
    return None
