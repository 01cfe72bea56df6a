"""Where each audit-trail file was read up to, and how to find the file again after a rotation.

A file is recognised by its content, not its name: the SHA-256 of its first bytes (up to 1 KiB,
decompressed for .gz). A file renamed by log rotation (``audit.jsonl`` -> ``audit.jsonl.1``, even
gzipped later) is resumed where it was left; a new file at the old path starts from the beginning;
a truncated or re-created file (shorter than the offset, or a different head) is read again from the
start. Whatever is re-read is de-duplicated on ``request_id``, so a wrong guess never loads twice. A line without
a usable request id is keyed by :func:`fallback_key`: the file's identity (its first line) and the line's byte
offset, the same under any name, plain or gzipped, so a re-read adds nothing there either.
Only whole lines are consumed: a last line without a newline is left for the next run, except in a .gz file
(complete once closed: its last line is read whether or not a newline ends it).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from ingest.paths import expand_paths as expand_any
from ingest.scim.parse import MAX_LINE_BYTES

HEAD_BYTES = 1024
# Names that promise an audit trail: such a file found in a directory is judged (rejected when its content is no
# format we read); any other file there is read when its content is a known format and listed as skipped if not.
TRAIL_NAMES = (".jsonl", ".ndjson", ".json", ".csv")
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class FileState:
    """One row of ``scim_file_state``."""

    path: str
    device: int | None
    inode: int | None
    head_len: int
    head_sha256: str
    size: int
    byte_offset: int
    line_count: int
    csv_header: str | None = None
    mtime_ns: int | None = None  # set only once the whole file was read (migration 19)


@dataclass
class Line:
    """One physical line: its number, its bytes (``None`` when too long) and where the next one starts."""

    number: int
    data: bytes | None
    length: int
    end_offset: int
    excerpt: bytes = b""


def expand_paths(paths: list[str], *, follow_symlinks: bool = False,
                 skipped_links: list[str] | None = None) -> tuple[list[str], list[str], set[str]]:
    """Absolute paths of the files named, found in directories (recursively, whatever their name) or matched by
    globs; the arguments that matched nothing; and which files were only found in a directory (a file of unknown
    content there is skipped, not rejected). Symbolic links found in a directory or by a glob are not followed
    (listed in ``skipped_links``) unless ``follow_symlinks``: a link in a log folder can point anywhere the ingest
    job may read."""
    files, missing = expand_any(paths, lambda _name: True, absolute=True, follow_symlinks=follow_symlinks,
                                skipped_links=skipped_links)
    named, _ = expand_any([p for p in paths if not os.path.isdir(p)], lambda _name: True, absolute=True,
                          follow_symlinks=follow_symlinks, skipped_links=[])
    found_in_directory = set(files) - set(named)
    return files, missing, found_in_directory


def promises_trail(path: str) -> bool:
    """Whether the file's name says it holds an audit trail (``.jsonl``, ``.csv``, ... also rotated or gzipped)."""
    name = os.path.basename(path).lower()
    return any(hint in name for hint in TRAIL_NAMES)


def is_gzip(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def open_stream(path: str):
    """The file's content as a binary stream (decompressed for .gz)."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def read_head(path: str) -> bytes:
    with open_stream(path) as fh:
        try:
            return fh.read(HEAD_BYTES)
        except (EOFError, gzip.BadGzipFile, zlib.error):
            return b""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_identity(head: bytes) -> str:
    """What a file is, for keys that must not change as it grows, is renamed or gzipped: the SHA-256 of its first
    line (up to and including the newline; at most :data:`HEAD_BYTES`). Keys are only made for complete lines,
    so that line is complete and never changes in an append-only log."""
    end = head.find(b"\n")
    return sha(head[: end + 1] if end >= 0 else head)[:16]


def fallback_key(identity: str, line: Line) -> str:
    """The key of a line without a usable request id: ``line:<file identity>:<byte offset>:<line digest>``.
    The offset is where the line starts in the (decompressed) content. The line's own digest keeps two files that
    happen to begin with the same line (two servers logging the same health check) from sharing keys."""
    start = line.end_offset - line.length
    return f"line:{identity}:{start}:{sha(line.data or line.excerpt)[:8]}"


# A file modified this recently may change again within its mtime's granularity without changing size: its
# state then keeps no mtime, and the next run reads it (from its offset) instead of trusting the stat.
RACY_NS = 2_000_000_000


def unchanged_since_read(state: FileState | None, st: os.stat_result) -> bool:
    """The file is exactly as the last complete read left it (device, inode, size and mtime in ns): nothing new
    can be in it, so it need not be opened at all."""
    return (state is not None and state.mtime_ns is not None and state.mtime_ns == st.st_mtime_ns
            and state.size == st.st_size and state.inode == st.st_ino and state.device == st.st_dev)


def mtime_to_keep(st: os.stat_result, now_ns: int) -> int | None:
    """``st``'s mtime to store, or None when it is too recent to trust (see RACY_NS)."""
    return st.st_mtime_ns if now_ns - st.st_mtime_ns > RACY_NS else None


def find_resume_point(path: str, head: bytes, device: int, inode: int, states: list[FileState]) -> FileState | None:
    """The stored state this file continues, or ``None`` to read it from the start.

    A state matches when the file begins with the same ``head_len`` bytes it had then. Any byte range
    within the verified head is identical, so resuming is safe; beyond it the 1 KiB prefix (request
    ids and times) makes a false match implausible, and a false match would only skip, never double.
    Same path first, then the same device/inode (a rename), then any (a rotated copy, e.g. gzipped).
    """
    digests: dict[int, str] = {}  # one hash per distinct head length, not one per stored state

    def digest(n: int) -> str:
        if n not in digests:
            digests[n] = sha(head[:n])
        return digests[n]

    candidates = [s for s in states if 0 < s.head_len <= len(head) and digest(s.head_len) == s.head_sha256]
    if not candidates:
        return None
    candidates.sort(key=lambda s: (s.path != path, (s.device, s.inode) != (device, inode), -s.byte_offset))
    return candidates[0]


def iter_lines(fh, start_offset: int, start_line: int, *, complete: bool = False) -> Iterator[Line]:
    """Complete lines from ``start_offset``; stops before a last line that has no newline yet, unless the
    file is ``complete`` (a closed .gz cannot grow: its last line is whole with or without a newline).

    A line longer than :data:`MAX_LINE_BYTES` is yielded with ``data=None`` (never held whole).
    """
    offset, number = start_offset, start_line
    while True:
        chunk = fh.readline(MAX_LINE_BYTES + 1)
        if not chunk:
            return
        if chunk.endswith(b"\n") or (complete and len(chunk) <= MAX_LINE_BYTES):
            number += 1
            offset += len(chunk)
            yield Line(number, chunk, len(chunk), offset)
            continue
        if len(chunk) <= MAX_LINE_BYTES:
            return  # an unfinished last line: read it next time
        length = len(chunk)
        excerpt = chunk[:200]
        while True:
            more = fh.readline(MAX_LINE_BYTES)
            if not more:
                if complete:
                    break  # the end of a complete file ends its last line
                return  # still being written; judge it when complete
            length += len(more)
            if more.endswith(b"\n"):
                break
        number += 1
        offset += length
        yield Line(number, None, length, offset, excerpt)


def seek_content(fh, offset: int) -> bool:
    """Position a (possibly gzip) stream at ``offset``; False if the content is shorter."""
    if offset == 0:
        return True
    try:
        fh.seek(offset)
        return fh.tell() == offset and _not_past_end(fh, offset)
    except (OSError, EOFError, zlib.error):
        return False


def _not_past_end(fh, offset: int) -> bool:
    if isinstance(fh, gzip.GzipFile):
        return True  # GzipFile.seek stops at the end of the data; tell() then differs
    return os.fstat(fh.fileno()).st_size >= offset
