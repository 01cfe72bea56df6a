"""SCIM logs as servers really write them (issue 22 item 4): Apache/nginx ``combined`` and ``common`` lines and a
mapping's regex read field by field, times converted to UTC; formats detected from the content (an unknown text
file is rejected with the reason and exit 1, never read as CSV); lines without a usable request id keyed by file
identity + byte offset (a re-read adds nothing, appended lines add only themselves); placeholder ids; files of
other extensions in a directory; exit codes."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import exitcodes
from ingest.scim.ingest import ingest_scim
from ingest.scim.mapping import MappingError, load_mapping
from ingest.scim.parse import LineRejected, normalise
from ingest.scim.textlog import COMBINED, COMMON, decode_text_line
from tests.conftest import run_cli

# The example line of Apache's log documentation (mod_log_config, "Combined Log Format"), read by hand: 13:55:36
# at -0700 is 20:55:36 UTC.
APACHE_DOC_COMBINED = (b'127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
                       b'"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"')
APACHE_DOC_COMMON = b'127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'


def _combined(ts: str, method: str, target: str, status: int, ua: str = "Microsoft Azure AD SCIM provisioning 1.0.0",
              ip: str = "20.190.147.212") -> str:
    return f'{ip} - - [{ts}] "{method} {target} HTTP/1.1" {status} 120 "-" "{ua}"\n'


# Six Entra-like requests as nginx would log them; the expected values are written next to each.
LINES = [
    _combined("02/Nov/2026:10:00:02 +0100", "GET", "/scim/v2/Users?filter=userName%20eq%20%22jane%40acme.com%22", 200),
    _combined("02/Nov/2026:10:00:02 +0100", "POST", "/scim/v2/Users", 201),
    _combined("02/Nov/2026:10:00:03 +0100", "POST", "/scim/v2/Users", 409),
    _combined("02/Nov/2026:10:40:10 +0100", "PATCH", "/scim/v2/Users/u_8842", 200),
    _combined("02/Nov/2026:10:40:11 +0100", "DELETE", "/scim/v2/Users/u_8842", 204),
    _combined("02/Nov/2026:10:40:11 +0100", "GET", "/scim/v2/Users/u_8842", 404),
]
EXPECTED = [  # (ts UTC, method, path, status, resource_id, user_name, operation)
    ("2026-11-02 09:00:02", "GET", "/scim/v2/Users", 200, None, "jane@acme.com", "user.search"),
    ("2026-11-02 09:00:02", "POST", "/scim/v2/Users", 201, None, None, "user.create"),
    ("2026-11-02 09:00:03", "POST", "/scim/v2/Users", 409, None, None, "user.create"),
    ("2026-11-02 09:40:10", "PATCH", "/scim/v2/Users/u_8842", 200, "u_8842", None, "user.patch"),
    ("2026-11-02 09:40:11", "DELETE", "/scim/v2/Users/u_8842", 204, "u_8842", None, "user.delete"),
    ("2026-11-02 09:40:11", "GET", "/scim/v2/Users/u_8842", 404, "u_8842", None, "user.get"),
]


def _rows(db: Path, where: str = "true") -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S'), method, path, status, "
                           "resource_id, user_name, operation FROM scim_requests WHERE " + where
                           + " ORDER BY source_file, source_line").fetchall()


def _ids(db: Path) -> list[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return [r[0] for r in con.execute("SELECT request_id FROM scim_requests ORDER BY source_file, source_line")
                .fetchall()]


def _rejects(db: Path) -> list[tuple[str, str, str]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT file, position, reason FROM ingest_rejects WHERE source = 'scim' "
                           "ORDER BY file, position").fetchall()


def _forget_positions(db: Path) -> None:
    """Make the next run read every file from its first byte again (as after a lost or reset file state)."""
    with duckdb.connect(str(db)) as con:
        con.execute("DELETE FROM scim_file_state")


def _load(db: Path, *paths: Path, **kw):
    return ingest_scim(str(db), [str(p) for p in paths], quiet=True, correlate=False, **kw)


# ------------------------------------------------------------------------------------------ parsing
def test_combined_and_common_lines_field_by_field():
    fields = decode_text_line(APACHE_DOC_COMBINED, COMBINED, "combined")
    assert fields["client_ip"] == "127.0.0.1" and fields["user"] == "frank" and fields["ident"] is None
    assert (fields["method"], fields["url"], fields["protocol"]) == ("GET", "/apache_pb.gif", "HTTP/1.0")
    assert (fields["status"], fields["bytes"]) == ("200", "2326")
    assert fields["referer"] == "http://www.example.com/start.html"
    assert fields["user_agent"] == "Mozilla/4.08 [en] (Win98; I ;Nav)"
    rec = normalise(fields, fallback_id=lambda: "k")
    assert rec["ts"] == "2000-10-10T20:55:36.000000Z"
    assert (rec["method"], rec["path"], rec["status"], rec["client_ip"]) == ("GET", "/apache_pb.gif", 200,
                                                                              "127.0.0.1")
    assert rec["user_agent"] == "Mozilla/4.08 [en] (Win98; I ;Nav)" and rec["request_id"] == "k"

    common = normalise(decode_text_line(APACHE_DOC_COMMON, COMMON, "common"), fallback_id=lambda: "k")
    assert common["ts"] == rec["ts"] and common["status"] == 200 and common["user_agent"] is None
    assert COMMON.match(APACHE_DOC_COMBINED.decode()) is None  # each format is told apart from the other

    # nginx escapes a quote inside a field as \x22, Apache as \"; fields a server appends are kept in `extra`.
    odd = (b'10.0.0.1 - - [02/Nov/2026:09:00:00 +0000] "GET /scim/v2/Users/a%22b HTTP/1.1" 200 5 "-" '
           b'"agent \\x22q\\x22 \\"r\\"" "10.9.8.7" 0.012')
    fields = decode_text_line(odd, COMBINED, "combined")
    assert fields["user_agent"] == 'agent "q" "r"' and fields["extra"] == '"10.9.8.7" 0.012'
    with pytest.raises(LineRejected, match="is not 'METHOD PATH PROTOCOL'"):
        decode_text_line(b'10.0.0.1 - - [02/Nov/2026:09:00:00 +0000] "\\x16\\x03\\x01" 400 150 "-" "-"',
                         COMBINED, "combined")


_FIELD = st.text(alphabet='abz09 -/:[]"\\.+%?=', max_size=14)


_CLF_LIKE = st.from_regex(r"\d{1,2}/(Jan|Feb|Oct|Foo)/\d{4}:\d{2}:\d{2}:\d{2}(\.\d{1,3})? [+-]\d{4}", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.tuples(_FIELD, _FIELD | _CLF_LIKE, _FIELD, _FIELD, _FIELD, _FIELD, _FIELD), st.binary(max_size=6))
def test_mangled_access_log_lines_are_loaded_or_rejected_never_crash(parts, noise):
    """Lines of a combined log with random fields (dates like 99/Foo/0000:25:61:61 +9999 included): a record or a
    reason, never another exception."""
    ip, ts, request, status, size, referer, agent = parts
    for line in (f'{ip} - - [{ts}] "{request}" {status} {size} "{referer}" "{agent}"'.encode(),
                 f'1.2.3.4 - - [{ts or "10/Oct/2000:13:55:36 -0700"}] "GET /{request} HTTP/1.1" 200 5 "-" "x"'.encode()
                 + noise):
        for fmt, pattern in (("combined", COMBINED), ("common", COMMON)):
            try:
                rec = normalise(decode_text_line(line, pattern, fmt), fallback_id=lambda: "k")
            except LineRejected as exc:
                assert str(exc)
            else:
                assert rec["ts"].endswith("Z") and 100 <= rec["status"] <= 999 and rec["request_id"] == "k"


def test_regex_mapping_reads_named_groups(tmp_path):
    mapping = tmp_path / "m.toml"
    mapping.write_text(r'''format = "regex"
pattern = '(?P<ts>\S+) (?P<request_id>\S+) (?P<client_ip>\S+) "(?P<request>[^"]*)" (?P<status>\d+) (?P<duration>\S+)'
[options]
duration_unit = "s"
''', encoding="utf-8")
    log = tmp_path / "app.log"
    log.write_text('2026-11-02T09:00:02.5Z r-77 10.1.2.3 "GET /scim/v2/Users?filter=userName%20eq%20%22a%40b.c%22 '
                   'HTTP/1.1" 200 0.250\n'
                   '2026-11-02T09:00:03Z - 10.1.2.3 "DELETE /scim/v2/Users/u1 HTTP/1.1" 204 0.004\n'
                   'worker 3 restarted\n', encoding="utf-8")
    db = tmp_path / "r.duckdb"
    out = _load(db, log, mapping=load_mapping(mapping))
    assert (out.new, out.rejected, out.fallback_keys) == (2, 1, 1)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT request_id, ts, method, path, status, duration_ms, client_ip, user_name "
                           "FROM scim_requests ORDER BY source_line").fetchall()
    assert rows[0][0] == "r-77" and rows[1][0].startswith("line:")  # '-' is no id
    assert [r[2:5] for r in rows] == [("GET", "/scim/v2/Users", 200), ("DELETE", "/scim/v2/Users/u1", 204)]
    assert rows[0][5] == pytest.approx(250.0) and rows[1][5] == pytest.approx(4.0)  # seconds -> ms
    assert rows[0][1].isoformat() == "2026-11-02T09:00:02.500000+00:00" and rows[0][6] == "10.1.2.3"
    assert rows[0][7] == "a@b.c"
    assert _rejects(db) == [(str(log), "line 3", "line does not match the mapping's pattern")]

    skipping = load_mapping({"format": "regex", "pattern": mapping.read_text().split("'")[1],
                             "options": {"duration_unit": "s", "unmatched_lines": "skip"}})
    out = _load(tmp_path / "skip.duckdb", log, mapping=skipping)
    assert (out.new, out.rejected, out.unmatched_skipped) == (2, 0, 1)


def test_regex_mapping_errors_name_the_fix(tmp_path):
    cases = {
        "has no group for 'status'": {"format": "regex", "pattern": r"(?P<ts>\S+) (?P<request>.*)"},
        "has no group for 'path'": {"format": "regex", "pattern": r"(?P<ts>\S+) (?P<method>\S+) (?P<status>\d+)"},
        "not a valid regular expression": {"format": "regex", "pattern": "(?P<ts>"},
        'needs pattern': {"format": "regex"},
        'only read with format = "regex"': {"format": "combined", "pattern": "x"},
        "options.timezone must be": {"format": "combined", "options": {"timezone": "Mars/Olympus"}},
    }
    for message, doc in cases.items():
        with pytest.raises(MappingError, match=message.replace("(", r"\(")):
            load_mapping(doc)
    # a group mapped in [fields] counts
    load_mapping({"format": "regex", "pattern": r"(?P<when>\S+) (?P<request>.*) (?P<code>\d+)",
                  "fields": {"ts": "when", "status": "code"}})


def test_times_without_offset_use_the_mappings_timezone():
    line = b'127.0.0.1 - - [02/Jul/2026 10:00:00] "GET /scim/v2/Users HTTP/1.1" 200 139'
    pattern = r'\[(?P<ts>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3})'
    for zone, utc in (("UTC", "2026-07-02T10:00:00"), ("-05:00", "2026-07-02T15:00:00"),
                      ("Europe/Berlin", "2026-07-02T08:00:00")):  # Berlin is UTC+2 in July (summer time)
        mapping = load_mapping({"format": "regex", "pattern": pattern, "options": {"timezone": zone}})
        rec = normalise(decode_text_line(line, mapping.pattern, "regex"), mapping, lambda: "k")
        assert rec["ts"] == utc + ".000000Z", zone
    # a time that carries its offset keeps it, whatever the mapping's zone
    mapping = load_mapping({"format": "combined", "options": {"timezone": "Europe/Berlin"}})
    rec = normalise(decode_text_line(APACHE_DOC_COMBINED, COMBINED, "combined"), mapping, lambda: "k")
    assert rec["ts"] == "2000-10-10T20:55:36.000000Z"


# ------------------------------------------------------------------------------------------ detection, exit codes
def test_combined_log_is_detected_and_loads_every_field(tmp_path):
    log = tmp_path / "access.log"
    log.write_text("".join(LINES), encoding="utf-8")
    db = tmp_path / "c.duckdb"
    proc = run_cli("ingest", "scim", "--db", str(db), "-q", "--no-correlate", str(log))
    assert proc.returncode == exitcodes.OK, proc.stderr
    assert "combined 1 file(s)" in proc.stderr and f"{len(LINES)} keyed by file and byte offset" in proc.stderr
    assert _rows(db) == EXPECTED
    assert _rejects(db) == []


def test_unknown_text_is_rejected_with_reason_and_exit_1_never_read_as_csv(tmp_path):
    # Before: the first line became a CSV header, the others were rejected, exit 0.
    log = tmp_path / "server.log"
    log.write_text("Dec  7 05:16:31 scim-1 app[311]: listening on :8080\n"
                   "Dec  7 05:16:32 scim-1 app[311]: GET /scim/v2/Users 200\n", encoding="utf-8")
    db = tmp_path / "u.duckdb"
    proc = run_cli("ingest", "scim", "--db", str(db), "-q", "--no-correlate", str(log))
    assert proc.returncode == exitcodes.FAILED, proc.stderr
    assert _ids(db) == []
    [(file, position, reason)] = _rejects(db)
    assert (file, position) == (str(log), "line 1")
    assert reason.startswith("not a known SCIM log format: lines 1-2 are neither JSON, a CSV header")
    assert 'format = "regex"' in reason  # the fix
    assert str(log) in proc.stderr and "not a known SCIM log format" in proc.stderr and "error:" in proc.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM scim_file_state").fetchone()[0] == 0  # judged again next run
        assert con.execute("SELECT outcome FROM ingest_runs WHERE source = 'scim'").fetchall() == [("failed",)]


def test_exit_codes(tmp_path):
    good = json.dumps({"ts": "2026-11-02T09:00:00Z", "request_id": "g1", "method": "GET", "path": "/Users",
                       "status": 200})
    bad = json.dumps({"ts": "2026-11-02T09:00:00Z", "request_id": "b1", "method": "GET", "path": "/Users",
                      "status": "abc"})
    all_bad, some_bad = tmp_path / "all-bad.jsonl", tmp_path / "some-bad.jsonl"
    all_bad.write_text(bad + "\n" + bad.replace("b1", "b2") + "\n", encoding="utf-8")
    some_bad.write_text(good + "\n" + bad.replace("b1", "b3") + "\n", encoding="utf-8")

    def run(db: str, *args: str) -> int:
        return run_cli("ingest", "scim", "--db", str(tmp_path / db), "-q", "--no-correlate", *args).returncode

    assert run("a.duckdb", str(all_bad)) == exitcodes.FAILED  # nothing loaded, something rejected (was 0)
    assert run("b.duckdb", str(some_bad)) == exitcodes.OK
    assert run("c.duckdb", "--strict", str(some_bad)) == exitcodes.STRICT
    assert run("b.duckdb", str(some_bad)) == exitcodes.OK  # a no-op re-run: nothing new, nothing rejected
    _forget_positions(tmp_path / "b.duckdb")  # read again: the good line is already loaded, the bad one rejected
    assert run("b.duckdb", str(some_bad)) == exitcodes.OK
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("# not a log\n", encoding="utf-8")
    assert run("d.duckdb", str(empty)) == exitcodes.FAILED  # no file in a format we read


# ------------------------------------------------------------------------------------------ keys
def test_fallback_key_rereads_add_nothing_and_appends_add_only_the_new(tmp_path):
    log = tmp_path / "access.log"
    log.write_text("".join(LINES[:4]), encoding="utf-8")
    db = tmp_path / "k.duckdb"
    assert _load(db, log).new == 4
    first = _ids(db)
    offsets = [0]
    for line in LINES[:3]:
        offsets.append(offsets[-1] + len(line.encode()))
    assert [int(k.split(":")[2]) for k in first] == offsets  # the key holds each line's byte offset
    assert len({k.split(":")[1] for k in first}) == 1  # and one file identity

    _forget_positions(db)  # a full re-read of the same content
    again = _load(db, log)
    assert (again.new, again.duplicates) == (0, 4) and _ids(db) == first

    with log.open("a", encoding="utf-8") as fh:  # appended lines: only they load
        fh.write("".join(LINES[4:]))
    more = _load(db, log)
    assert (more.new, more.duplicates) == (2, 0)
    assert _rows(db) == EXPECTED

    rotated = tmp_path / "old" / "access.log.1.gz"  # rotated and gzipped, read from its start: same keys
    rotated.parent.mkdir()
    with log.open("rb") as src, gzip.open(rotated, "wb") as dst:
        shutil.copyfileobj(src, dst)
    _forget_positions(db)
    out = _load(db, rotated)
    assert (out.new, out.duplicates) == (0, 6)

    # Another file that begins with the same line (a second server logging the same probe) is not a copy:
    # its other lines load.
    twin = tmp_path / "other" / "access.log"
    twin.parent.mkdir()
    twin.write_text(LINES[0] + LINES[5] + LINES[4], encoding="utf-8")
    out = _load(db, twin)
    assert (out.new, out.duplicates) == (2, 1)


def test_placeholder_request_ids_are_never_keys(tmp_path):
    trail = tmp_path / "gunicorn.jsonl"
    base = {"ts": "[02/Nov/2026:10:00:02 +0100]", "method": "GET", "path": "/scim/v2/Users", "status": "200"}
    ids = ["-", "", "null", None, "  -  ", "req-1", "-"]
    with trail.open("w", encoding="utf-8") as fh:
        for i, rid in enumerate(ids):
            rec = dict(base, path=f"/scim/v2/Users/u{i}")
            if rid is not None:
                rec["request_id"] = rid
            fh.write(json.dumps(rec) + "\n")
    db = tmp_path / "p.duckdb"
    out = _load(db, trail)
    assert (out.new, out.duplicates, out.rejected, out.fallback_keys) == (7, 0, 0, 6)  # was: 1 loaded, 6 "already"
    keys = _ids(db)
    assert keys[5] == "req-1" and all(k.startswith("line:") for i, k in enumerate(keys) if i != 5)
    assert [r[2] for r in _rows(db)] == [f"/scim/v2/Users/u{i}" for i in range(len(ids))]
    assert _rows(db)[0][0] == "2026-11-02 09:00:02"  # gunicorn's bracketed %(t)s time, to UTC


def test_other_extensions_in_a_directory_are_read_by_content_or_listed_as_skipped(tmp_path):
    logs = tmp_path / "logs"
    (logs / "nginx").mkdir(parents=True)
    (logs / "nginx" / "access.log").write_text("".join(LINES[:2]), encoding="utf-8")
    (logs / "nginx" / "access.log.1").write_text(LINES[2], encoding="utf-8")
    (logs / "nginx" / "error.log").write_text(
        '2026/11/02 10:00:02 [error] 12#12: *1 connect() failed (111: Connection refused) while connecting to '
        'upstream\n', encoding="utf-8")
    (logs / "audit.txt").write_text(json.dumps({"ts": "2026-11-02T09:40:10Z", "request_id": "t-1", "method": "PATCH",
                                                "path": "/scim/v2/Users/u_1", "status": 200}) + "\n",
                                    encoding="utf-8")
    (logs / "README.md").write_text("# where the logs are\n", encoding="utf-8")
    (logs / "broken.jsonl").write_text("this is not JSON\n", encoding="utf-8")  # its name promises a trail
    db = tmp_path / "d.duckdb"
    proc = run_cli("ingest", "scim", "--db", str(db), "-q", "--no-correlate", str(logs))
    assert proc.returncode == exitcodes.OK, proc.stderr  # loaded some, rejected one: a warning
    with duckdb.connect(str(db), read_only=True) as con:
        by_file = dict(con.execute("SELECT source_file, count(*) FROM scim_requests GROUP BY 1").fetchall())
    assert by_file == {str(logs / "nginx" / "access.log"): 2, str(logs / "nginx" / "access.log.1"): 1,
                       str(logs / "audit.txt"): 1}
    assert "skipped 2 file(s)" in proc.stderr
    for name in ("error.log", "README.md"):
        line = next(x for x in proc.stderr.splitlines() if x.strip().startswith(str(logs / "nginx" / name))
                    or x.strip().startswith(str(logs / name)))
        assert "not a known SCIM log format" in line, line
    # a name that promises JSON Lines is read as such: its bad line is rejected with its own reason
    [(file, position, reason)] = _rejects(db)
    assert (Path(file).name, position) == ("broken.jsonl", "line 1") and reason.startswith("invalid JSON")


def test_inline_mapping_in_provlens_toml(tmp_path):
    log = tmp_path / "wsgi.log"
    log.write_text('127.0.0.1 - - [02/Nov/2026 09:00:02] "DELETE /scim/v2/Users/u_8842 HTTP/1.1" 204 0\n'
                   "INFO:scim2_server:something the server says\n", encoding="utf-8")
    db = tmp_path / "run.duckdb"
    config = tmp_path / "provlens.toml"
    config.write_text(f'''db = "{db}"
[[sources]]
type = "scim"
paths = ["{log}"]
[sources.mapping]
format = "regex"
pattern = '\\[(?P<ts>[^\\]]+)\\] "(?P<request>[^"]*)" (?P<status>\\d+)'
[sources.mapping.options]
timezone = "+01:00"
unmatched_lines = "skip"
''', encoding="utf-8")
    proc = run_cli("ingest", "run", "--config", str(config), "-q")
    assert proc.returncode == exitcodes.OK, proc.stderr
    assert _rows(db) == [("2026-11-02 08:00:02", "DELETE", "/scim/v2/Users/u_8842", 204, "u_8842", None,
                          "user.delete")]
    assert _rejects(db) == []
