"""Helpers for the reliability and security tests (issue 8): a small simulated tenant, the ingest CLI as
a killable child process, database snapshots compared row by row, and the fault matrix and kill plan
that docs/reliability.md is generated from (``python -m tests.reliability_harness --write-doc``).

The matrix and the kill plan are data: the tests are parametrised from them and assert each outcome,
and :func:`render_doc` turns the same data into docs/reliability.md, so the document cannot drift from
what the tests check (tests/test_reliability_doc.py compares the committed file with ``render_doc()``).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"

# A small tenant: the kill and reader tests run the CLI dozens of times.
SMALL_SIM = {"seed": 23, "users": 40, "days": 4, "end": datetime(2026, 11, 1, tzinfo=timezone.utc)}
GRAPH_SINCE = "2026-10-27T12:00:00Z"  # the simulated period starts on 2026-10-28
GRAPH_UNTIL = "2026-11-01T06:00:00Z"
GRAPH_SLICE = "1d"
GRAPH_MID = "2026-10-30T00:00:00Z"  # the fault matrix starts from a database pulled up to here
TOKEN = "fake-graph-token-for-tests"

# ---------------------------------------------------------------------------- the kill plan
GRAPH_KILLS = 12  # SIGKILLs of `python -m ingest graph`
SCIM_KILLS = 10  # SIGKILLs of `python -m ingest scim`
SCIM_FILES = 6  # the audit trail is split so a run commits several batches


# ---------------------------------------------------------------------------- the fault matrix
@dataclass(frozen=True)
class FaultCase:
    """One hostile Graph answer, the fault plan that produces it, and the outcome the test asserts."""

    name: str  # what Graph did, as the doc says it
    plan: tuple[str, ...]  # fake-server fault specs (simulator/faults.py)
    exit_code: int  # the tested exit code of `python -m ingest graph`
    outcome: str  # the tested outcome in words (doc column)
    words: tuple[str, ...] = ()  # the error message must contain these
    max_wait: float = 30.0  # --max-wait for the run
    mid_run: bool = False  # the fault strikes after some slices committed (partial outcome)
    waited: float | None = None  # the retry wait the log must show (Retry-After honoured exactly)


# Exit codes are those of ingest/exitcodes.py: 0 ok, 2 usage, 3 partial, 4 auth, 5 unreachable.
FAULT_MATRIX: tuple[FaultCase, ...] = (
    FaultCase("429, Retry-After: 1", ("3:429:retry-after=1",), 0, "waited 1 s, retried, completed",
              waited=1.0),
    FaultCase("429, Retry-After: 2.128", ("3:429:retry-after=2.128",), 0, "waited 2.128 s, retried, completed",
              waited=2.128),
    FaultCase("429, Retry-After: 30,120", ("1:429:retry-after=30%2C120,repeat=1000",), 5,
              "read as 30.12 s (a decimal comma), more than --max-wait 5: stopped at once, watermark unchanged",
              ("--max-wait", "30"), max_wait=5),
    FaultCase("429, Retry-After: an HTTP date 1 s ahead", ("3:429:retry-after=date+1",), 0,
              "waited until the date, retried, completed"),
    FaultCase("429, Retry-After: 600", ("1:429:retry-after=600,repeat=1000",), 5,
              "600 s is more than --max-wait 5: stopped at once, watermark unchanged", ("--max-wait", "600"),
              max_wait=5),
    FaultCase("429, Retry-After: 600, after some slices committed", ("9:429:retry-after=600,repeat=1000",), 3,
              "stopped (partial): committed slices kept, watermark = last committed slice; a re-run resumes there",
              ("--max-wait", "600"), max_wait=5, mid_run=True),
    FaultCase("503 Service Unavailable", ("3:503",), 0, "backed off, retried, completed"),
    FaultCase("504 Gateway Timeout", ("3:504",), 0, "backed off, retried, completed"),
    FaultCase("503 on every request", ("1:503:retry-after=1,repeat=1000",), 5,
              "retried until --max-wait 3 was spent: stopped, watermark unchanged", ("--max-wait", "503"),
              max_wait=3),
    FaultCase("connection reset", ("3:reset",), 0, "retried, completed"),
    FaultCase("body cut in the middle", ("3:truncated",), 0, "retried, completed"),
    FaultCase("HTML error page (502)", ("3:html",), 0, "retried, completed"),
    FaultCase("HTML page with status 200", ("3:html:status=200",), 0, "retried, completed"),
    FaultCase("one 401 (token refreshed)", ("3:401",), 0, "asked for a fresh token, retried, completed"),
    FaultCase("401 after the token expired mid-run", ("9:expire",), 4,
              "stopped with the credentials hint; committed slices kept, watermark = last committed slice",
              ("401", "expired"), mid_run=True),
    FaultCase("403 tenant without premium licence", ("1:403:repeat=1000",), 4,
              "stopped: names the licence (P1/P2) and the permissions; watermark unchanged",
              ("P1", "AuditLog.Read.All")),
    FaultCase("404 Not Found", ("1:404:repeat=1000",), 2, "stopped: says to check --graph-url; watermark unchanged",
              ("404", "--graph-url")),
    FaultCase("$skiptoken rejected (400)", ("4:skiptoken",), 0, "slice fetched again from its first page, completed"),
    FaultCase("empty page that still has a nextLink", ("3:empty",), 0, "followed the nextLink, completed"),
    FaultCase("empty pages with a nextLink, without end", ("1:empty:repeat=1000000",), 5,
              "stopped after 100 empty pages in a row (at most 100 per slice), watermark unchanged",
              ("100 empty pages in a row",)),
    FaultCase("empty pages with a nextLink, without end, after some slices committed", ("8:empty:repeat=1000000",),
              3, "stopped (partial) after 100 empty pages in a row: committed slices kept, watermark = last "
                 "committed slice", ("100 empty pages in a row",), mid_run=True),
    FaultCase("empty pages with a nextLink, for longer than --max-wait", ("1:empty:repeat=1000000",), 5,
              "their time counts against --max-wait 0.02: stopped, watermark unchanged", ("--max-wait 0.02",),
              max_wait=0.02),
)


# ---------------------------------------------------------------------------- the dashboard (issue 27)
FD_PAGE_LOADS = 200  # tests/test_dashboard_fds.py: page loads (a new WebSocket session each) against the real server
FD_MAX_GROWTH = 20  # ... and the server's open fds may grow by less than this
# tests/test_app_url_dates.py: each of these in a ?range=custom URL gives a notice and the default range
URL_BAD_DAYS: tuple[dict[str, str], ...] = (
    {"to": "9999-12-31"}, {"from": "0001-01-01"}, {"from": "1969-12-31", "to": "2026-10-30"}, {"to": "2201-01-01"},
    {"from": "2026-02-30"}, {"from": "yesterday"}, {"to": "99999-01-01"}, {"from": "2026-10-30", "to": "2026-10-01"},
    {"from": "2026-10-30T25:00"}, {"from": "[x](http://127.0.0.2:9/)"},
)


@dataclass(frozen=True)
class DashboardCase:
    """A dashboard defect of issue 27, what the dashboard does now, and the test that checks it."""

    defect: str
    now: str
    test: str


DASHBOARD_CASES: tuple[DashboardCase, ...] = (
    DashboardCase("markdown in `/identity?q=` or in a UPN, display name or app name rendered a live link and an "
                  "image the browser fetched",
                  "every user- or data-controlled string reaching markdown (text, headings, captions, alerts, "
                  "tooltips) goes through `pages/common.md_text`: ASCII punctuation backslash-escaped, a word "
                  "joiner in `http:`, `www.` and `@` (GFM autolinks); chart text reaches plotly.js with `&`, `<`, "
                  "`>` as entities (`charts.plotly_text`); headless Chromium makes no request to "
                  "another host and shows no off-server link or image",
                  "tests/test_security_markdown.py"),
    DashboardCase("`?range=custom&to=9999-12-31` raised an uncaught `OverflowError` on every page",
                  f"a day that does not parse, lies outside 1970-2200 or starts after the end gives a notice and "
                  f"the default range on every page ({len(URL_BAD_DAYS)} bad values)",
                  "tests/test_app_url_dates.py"),
    DashboardCase("one future-dated event made the freshness panel say \"Data lag: 0 min\"",
                  "the panel says the newest event is dated in the future (check the source clock) and counts the "
                  "lag from the newest sync cycle that started before now",
                  "tests/test_app_freshness.py"),
    DashboardCase("every page view left 3 fds open (Streamlit 1.67 parks a closed tab's session with its event "
                  "loop); EMFILE at the default limit of 1,024",
                  f"serve.py closes a parked session's loop (`pages/session_loops.py`); {FD_PAGE_LOADS} page loads "
                  f"grow the server's open fds by less than {FD_MAX_GROWTH}; a reconnecting tab still runs",
                  "tests/test_dashboard_fds.py"),
    DashboardCase("`/_stcore/metrics` answered without a login",
                  "404 (any method, under a base URL path too) unless `PROVLENS_STREAMLIT_METRICS=1`",
                  "tests/test_security_metrics.py"),
    DashboardCase("a secrets file that could not be parsed or read, or an `[Auth]` section, turned login off: an "
                  "anonymous visitor saw every page",
                  "login fails closed: an unreadable or unparsable secrets file, a look-alike section, an "
                  "incomplete `[auth]`, a multi-tenant authority without `tenant_id` or an unknown access rule "
                  "stops the app with a page naming the problem (no data, no page list); the allow-list reads "
                  "`oid`/`tid` and the tenant-set `preferred_username`/`upn` (`email` only when trusted)",
                  "tests/test_security_login.py, tests/test_e2e_login.py"),
    DashboardCase("an anonymous visitor saw the app's module names in the sidebar",
                  "the sign-in and misconfiguration pages call `st.navigation` with one hidden page",
                  "tests/test_e2e_login.py"),
)

# ---------------------------------------------------------------------------- the store (issue 27)
STORE_CASES: tuple[DashboardCase, ...] = (
    DashboardCase("a pull re-reading its 2 h overlap (or overlapping `ingest files` loads) appended known events to "
                  "the identity page's summary again (4,416 rows for 4,280 events)",
                  "a load refreshes the summaries for its new and changed events only; every summary equals its "
                  "recomputation after 40-minute pulls and overlapping file loads",
                  "tests/test_store_derived.py, tests/test_reference_oracle.py"),
    DashboardCase("a full disk said \"cannot rollback - no transaction is active\" and left the run `running`",
                  "the COMMIT's own error is printed, the run is recorded `failed`, exit 6, what was committed "
                  "stays and a re-run finishes without duplicates",
                  "tests/test_reliability_disk_full.py"),
    DashboardCase("a store with damaged blocks exited 1; a SQLite file named `.duckdb` made DuckDB download an "
                  "extension over http",
                  "both exit 6 with a clear line; no connection installs or loads a DuckDB extension",
                  "tests/test_reliability_foreign_files.py"),
    DashboardCase("a store written by a newer provlens was read and exported without a warning",
                  "every reader and writer refuses it (\"upgrade provlens\"); an older one, or one whose summaries "
                  "another definition built, is refused by readers until `ingest migrate`",
                  "tests/test_migrate_cli.py"),
)


# ---------------------------------------------------------------------------- processes
def python() -> str:
    return sys.executable


def cli_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVLENS_")}
    env.update(extra)
    return env


def graph_argv(db: str, base_url: str, sps: list[str], *, since: str | None = GRAPH_SINCE,
               until: str = GRAPH_UNTIL, slice_length: str = GRAPH_SLICE, extra: tuple[str, ...] = ()) -> list[str]:
    argv = [python(), "-m", "ingest", "graph", "--db", db, "--graph-url", base_url, "--rate", "off",
            "--until", until, "--slice", slice_length, "--top", "25", "-q", "--log-format", "json", *extra]
    if since:
        argv += ["--since", since]
    for sp in sps:
        argv += ["--service-principal-id", sp]
    return argv


def scim_argv(db: str, paths: list[str]) -> list[str]:
    return [python(), "-m", "ingest", "scim", "--db", db, "-q", *paths]


@dataclass
class KillResult:
    killed: bool  # the process was still running when SIGKILL arrived
    returncode: int
    seconds: float
    stderr: str


def run_and_kill(argv: list[str], env: dict, *, after_seconds: float | None = None,
                 after_events: tuple[str, int] | None = None, jitter: float = 0.0) -> KillResult:
    """Start ``argv``; SIGKILL it ``after_seconds``, or ``jitter`` seconds after the n-th log line containing
    ``after_events[0]`` (a JSON event name), whichever is given. Returns whether the kill hit a live process."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines: list[str] = []
    try:
        if after_events is not None:
            name, count = after_events
            seen = 0
            for raw in proc.stderr:
                line = raw.decode("utf-8", "replace")
                lines.append(line)
                if f'"event":"{name}"' in line:
                    seen += 1
                    if seen >= count:
                        break
            time.sleep(jitter)
        else:
            deadline = started + (after_seconds or 0.0)
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.005)
        alive = proc.poll() is None
        if alive:
            os.kill(proc.pid, signal.SIGKILL)
        rest = proc.stderr.read().decode("utf-8", "replace")
        code = proc.wait(timeout=30)
        return KillResult(alive, code, time.monotonic() - started, "".join(lines) + rest)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()


def run(argv: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------------------- database snapshots
def query(db: str | Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def events(db: str | Path) -> dict[str, str]:
    """id -> raw JSON text of every stored event."""
    return dict(query(db, "SELECT id, raw::VARCHAR FROM events"))


def event_ids(db: str | Path) -> list[str]:
    return [r[0] for r in query(db, "SELECT id FROM events")]


def scim_requests(db: str | Path) -> dict[str, tuple]:
    """request_id -> (raw, source_file, source_line) of every stored SCIM request."""
    return {r[0]: r[1:] for r in query(db, "SELECT request_id, raw::VARCHAR, source_file, source_line "
                                           "FROM scim_requests")}


def scim_request_ids(db: str | Path) -> list[str]:
    return [r[0] for r in query(db, "SELECT request_id FROM scim_requests")]


def watermarks(db: str | Path) -> dict[str, datetime]:
    return dict(query(db, "SELECT scope, value FROM watermarks WHERE source = 'graph'"))


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def files_sha256(path: str | Path) -> dict[str, str]:
    """The database file and its WAL (if any)."""
    out = {}
    for p in (Path(path), Path(str(path) + ".wal")):
        if p.exists():
            out[p.name] = file_sha256(p)
    return out


# ---------------------------------------------------------------------------- the document
def render_doc() -> str:
    from ingest import exitcodes
    from tests.browser import BUDGET_S

    names = {getattr(exitcodes, n): n for n in dir(exitcodes) if n.isupper()}
    lines = [
        "# Reliability and security",
        "",
        "<!-- Generated by `python -m tests.reliability_harness --write-doc` from the data the tests are",
        "     parametrised with (tests/reliability_harness.py); tests/test_reliability_doc.py fails when this",
        "     file and the tests disagree. Do not edit by hand. -->",
        "",
        "Every number and outcome below is asserted by a test; when a test fails, the claim is false.",
        "Run them with `.venv/bin/python -m pytest tests/test_reliability_*.py tests/test_security_*.py -q`.",
        "",
        "## 1. Crash safety (tests/test_reliability_crash.py)",
        "",
        "| ingest | SIGKILLs | when | then | records lost | records duplicated |",
        "|---|---|---|---|---|---|",
        f"| `python -m ingest graph` (fake Graph, {SMALL_SIM['users']} users, {SMALL_SIM['days']} days, "
        f"slices of {GRAPH_SLICE}) | {GRAPH_KILLS} | half at a random time, half just after a random slice "
        "commit (+0-60 ms: the next fetch, load or commit) | re-run without `--since` (resumes at the "
        "watermark) | 0 | 0 |",
        f"| `python -m ingest scim` ({SCIM_FILES} audit files) | {SCIM_KILLS} | at a random time "
        "(reading, loading, committing, correlating) | re-run on the same files | 0 | 0 |",
        f"| **total** | **{GRAPH_KILLS + SCIM_KILLS}** | | | **0** | **0** |",
        "",
        "After every kill the database opens, and its watermarks never run ahead of the data: every event of",
        "the simulator's ground truth before a scope's watermark is in the database, and every audit line",
        "before a file's stored read position is loaded. After the final re-run the database equals an",
        "uninterrupted run row by row (event ids and raw JSON, SCIM request ids, raw lines and positions,",
        "watermarks). A kill never leaves a half-written transaction: DuckDB's write-ahead log is replayed or",
        "discarded when the file is next opened.",
        "",
        "A corrupt or foreign database file gives a clear error (exit 6 `DATABASE`) and is left byte-identical",
        "by every command: `ingest files`, `ingest graph`, `ingest scim`, `ingest demo`, `ingest run`,",
        "`queries export`, and the dashboard (a red message, no stack trace)",
        "(tests/test_reliability_foreign_db.py).",
        "",
        "## 2. Readers beside writers (tests/test_reliability_readers.py)",
        "",
        "Three reader processes run the dashboard's page queries (`queries.db.run`) in a tight loop while ten",
        "`python -m ingest files` runs load new events one after another. Asserted: zero errors reach a",
        "reader; no ingest waits more than 10 s in total for the database lock; after each ingest a new",
        "reader sees exactly the events loaded so far.",
        "",
        "DuckDB's file lock is first come, first served, so readers opening short connections back to back",
        "kept a writer out for 27 s in this test. Now a writer that finds the file locked touches",
        "`<db>.write-wanted` on every retry and readers hold back (at most 10 s) while that marker is",
        "fresh (`ingest/dbfile.py`, `connect_with_retry`); a marker left by a killed writer is stale after",
        "2.5 s and ignored. Readers retry a locked file with backoff; neither side shows a lock error.",
        "The readers keep the file attached between calls (`PROVLENS_READ_KEEP_S`, default 10 s, as in",
        "this test's reader processes) and detach it as soon as that marker is fresh and no call of theirs",
        "is running (`ingest/dbfile.py`; tests/test_read_keep.py covers a writer in another process and in",
        "the same process, a replaced file, idle release, and a call running while its attachment retires).",
        "",
        "## 3. Hostile Graph responses (tests/test_reliability_graph_faults.py)",
        "",
        "Each row is one test case against the fake Graph server (`simulator/graph_server.py`) through the",
        "real msgraph-sdk. \"Completed\" means every event of the window landed exactly once and the",
        "watermark reached the end of the window; \"watermark unchanged\" means the run changed no event and",
        "no watermark of the database it started from.",
        "",
        "| Graph answers | fault plan | exit code | tested outcome |",
        "|---|---|---|---|",
    ]
    for case in FAULT_MATRIX:
        plan = ", ".join(f"`{p}`" for p in case.plan)
        lines.append(f"| {case.name} | {plan} | {case.exit_code} `{names[case.exit_code]}` | {case.outcome} |")
    lines += [
        "",
        f"Faults tried: {len(FAULT_MATRIX)}; records lost: 0.",
        "",
        "## 4. Hostile input (tests/test_security_input.py)",
        "",
        "- Property tests (hypothesis): random and mutated Graph events loaded through the store never crash",
        "  a load and never lose a record that has an id and a valid `activityDateTime` (the others are",
        "  rejected with their position); random \"Web Response\" texts never break the SQL regexes and a",
        "  well-formed one yields its HTTP status, `scimType` and detail; mutated SCIM audit lines and CSV",
        "  rows are loaded or rejected, never crash; random mapping files load or fail with `MappingError`.",
        "- SQL-injection payloads in every sidebar filter (URL `range`, `from`, `to`, `sp`, `job`), the",
        "  identity search box (`q`) and the export page's dataset (`dataset`): every page renders, the",
        "  payload matches nothing, and the database file is byte-identical afterwards (all values are",
        "  bound parameters).",
        "- User and display names with quotes, control characters, right-to-left text, emoji and",
        "  spreadsheet-formula prefixes render on every page and export as neutralised CSV cells.",
        "- An event dated outside the years 1900-2999 (year 10000, `-0001`, a BC date) is a reject with its",
        "  position (\"activityDateTime out of range\") and the rest of its file lands, as a Graph page (.json.gz)",
        "  and as NDJSON into an empty or a filled store (tests/test_files_bad_dates.py).",
        "- `ingest files` streams a file bigger than its memory cap (`PROVLENS_FILES_MAX_DOC_MB`): a ~1 MB gzip",
        "  expanding to 200 MiB, as a Graph page and as NDJSON, loads every event with the cap at 2 MB while the",
        "  process's peak RSS stays within 80 MiB of loading a one-event file; an item bigger than the cap is a",
        "  reject (tests/test_files_memory_cap.py).",
        "- The last line of a `.gz` SCIM audit file loads (or is rejected with its reason) without a final",
        "  newline; a plain file still holds an unterminated last line back until it is complete or rotated",
        "  into a .gz (tests/test_scim_gz_last_line.py).",
        "- Symbolic links in a SCIM trail directory or glob are not followed without `--follow-symlinks`; the",
        "  skipped ones are reported and nothing of their targets is stored or exported",
        "  (tests/test_scim_symlinks.py).",
        "- `ingest demo` refuses (exit 2) to replace a store holding any event or SCIM request the demo did not",
        "  load; `--force` replaces it after a backup copy that holds them (tests/test_demo_refuses.py).",
        "",
        "- Markdown in the identity search (`/identity?q=`) and in stored UPNs, display names and app names",
        "  is shown as text (section 7).",
        "",
        "## 5. Secrets (tests/test_security_secrets.py)",
        "",
        "`ingest graph` (client secret through azure-identity's `ClientSecretCredential` with its token",
        "request answered in-process, and `PROVLENS_GRAPH_TOKEN`), `ingest scim` (audit lines carrying",
        "`Authorization` headers and tokens), `ingest files` and `ingest run` are run with known secret and",
        "token strings. They appear nowhere: not in stdout/stderr (text and `--log-format json`), error",
        "output, the database file bytes or any stored text value, nor in CSV/Parquet exports. provlens",
        "writes no token cache: no new file appears under `$HOME` and none outside the database and exports.",
        "Secret query parameters of SCIM requests (`access_token`, `code`, `client_secret`, `id_token`,",
        "`refresh_token`, `password`, `sig`, `signature`, `token`, API keys) are stored as `name=REDACTED` in",
        "the query column and the raw line, and appear neither in exports nor in the database file's bytes",
        "(tests/test_scim_query_secrets.py). Credentials in `--graph-url` (`http://user:pw@host`) appear in no",
        "log line (text or JSON) and no error line (tests/test_graph_url_credentials.py).",
        "",
        "## 6. Login (tests/test_security_login.py)",
        "",
        "With an `[auth]` section in `.streamlit/secrets.toml` a visitor who has not signed in sees only a",
        "sign-in prompt (no query runs, no table, metric or chart is drawn); a signed-in user sees data only",
        "when `[provlens.access]` allows them (object id, tenant, address, domain, Entra group id or app role),",
        "everyone else gets a polite refusal; a broken login configuration stops the app (section 7).",
        "Without `[auth]` the server binds to 127.0.0.1 (`.streamlit/config.toml`,",
        "`scripts/dashboard.sh`). Every page leaves the database file byte-identical (read-only connections).",
        "",
        "## 7. The dashboard under hostile URLs and long use (issue 27)",
        "",
        "| defect | now | test |",
        "|---|---|---|",
    ]
    lines += [f"| {case.defect} | {case.now} | {case.test} |" for case in DASHBOARD_CASES]
    lines += [
        "",
        "Browser tests wait on the app's own state (`stApp` with `data-test-script-state=\"notRunning\"` and",
        f"the page's title, then its charts drawn) within one overall budget of {BUDGET_S:.0f} s (`tests/browser.py`),",
        "never on the network going idle or a fixed sleep.",
        "",
        "## 8. The store under overlaps, full disks and foreign files (issue 27)",
        "",
        "| defect | now | test |",
        "|---|---|---|",
    ]
    lines += [f"| {case.defect} | {case.now} | {case.test} |" for case in STORE_CASES]
    lines += [""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- readers and timed writers
# The dashboard's page queries (pages/*.py, app.py) with the extra parameters the pages pass.
PAGE_QUERIES: dict[str, dict] = {
    "meta": {}, "service_principals": {}, "jobs": {}, "freshness": {}, "tables": {}, "table_rows": {},
    "overview_kpis": {}, "events_per_day_by_status": {}, "top_error_codes": {"limit": 10}, "job_status": {},
    "last_cycle": {}, "cycles_timeline": {}, "missed_cycles": {}, "quarantine_periods": {},
    "config_changes": {}, "config_changes_recent": {"limit": 5},
    "cycle_events": {"cycle_id": "c"}, "success_rate_per_day": {}, "action_status_counts": {},
    "failures_by_code_day": {}, "top_errors": {}, "recurring-failures": {}, "failures": {},
    "skips_by_category": {}, "skips_by_category_day": {}, "skip_identities": {},
    "violations_summary": {"allowed_domains": ["contoso.com"]}, "violations": {"allowed_domains": ["contoso.com"]},
    "allowed_email_domains": {"allowed_domains": ["contoso.com"]},
    "identity_search": {"term": "a"}, "identity_events": {"source_id": "x"}, "scim_kpis": {},
    "scim_latency": {}, "scim_errors_by_type": {}, "scim_auth_failures": {}, "scim_probes": {},
    "correlation_class_counts": {}, "scim_unlogged_requests": {}, "correlation_contradictions": {},
}


def reader_loop(db: str, stop_file: str, out_file: str) -> None:
    """Run the page queries round-robin until ``stop_file`` exists; write counts and errors as JSON."""
    import json

    from queries import db as qdb

    ok, errors = 0, []
    names = list(PAGE_QUERIES)
    i = 0
    while not os.path.exists(stop_file):
        name = names[i % len(names)]
        i += 1
        try:
            qdb.run(db, name, None, **PAGE_QUERIES[name])
            ok += 1
        except Exception as exc:  # noqa: BLE001 - every error that would reach a page is counted
            errors.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    Path(out_file).write_text(json.dumps({"ok": ok, "errors": errors}), encoding="utf-8")


def timed_cli(out_file: str, argv: list[str]) -> int:
    """Run ``python -m ingest ARGV`` in this process, timing every wait for the database lock."""
    import json

    from ingest import cli, store

    waits: list[float] = []
    original = store.connect_with_retry

    def timed(path, read_only, timeout):
        started = time.monotonic()
        try:
            return original(path, read_only, timeout)
        finally:
            waits.append(time.monotonic() - started)

    store.connect_with_retry = timed
    code = cli.main(argv)
    Path(out_file).write_text(json.dumps({"code": code, "waits": waits}), encoding="utf-8")
    return code


def fake_entra_cli(argv: list[str]) -> int:
    """Run ``python -m ingest ARGV`` with Microsoft's token endpoint answered in-process: azure-identity's
    ``ClientSecretCredential`` and MSAL run unchanged; only their HTTP calls (``MsalClient.get/post``) are
    answered here. The token endpoint checks that the client secret from the environment arrived and
    issues ``PROVLENS_TEST_ISSUED_TOKEN`` if the secret equals ``PROVLENS_TEST_EXPECTED_SECRET`` (test-only
    variables); ``PROVLENS_TEST_ENTRA_LOG`` receives one line per token request (never the secret)."""
    import json
    from urllib.parse import urlparse

    from azure.identity._internal import msal_client

    from ingest import cli

    secret = os.environ.get("PROVLENS_TEST_EXPECTED_SECRET", "")  # what Entra knows, not what we send
    issued = os.environ["PROVLENS_TEST_ISSUED_TOKEN"]
    log = os.environ["PROVLENS_TEST_ENTRA_LOG"]

    class Answer:
        def __init__(self, body: dict, status: int = 200):
            self.status_code, self.text, self.headers = status, json.dumps(body), {}

        def raise_for_status(self) -> None:
            if self.status_code >= 400:
                raise RuntimeError(f"HTTP {self.status_code}")

    def get(self, url, params=None, headers=None, **kwargs):
        parsed = urlparse(url)
        tenant = parsed.path.strip("/").split("/")[0]
        base = f"https://{parsed.hostname}/{tenant}"
        if "discovery/instance" in url:
            return Answer({"tenant_discovery_endpoint": f"{base}/v2.0/.well-known/openid-configuration",
                           "api-version": "1.1", "metadata": [{"preferred_network": parsed.hostname,
                                                               "preferred_cache": parsed.hostname,
                                                               "aliases": [parsed.hostname]}]})
        return Answer({"authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                       "token_endpoint": f"{base}/oauth2/v2.0/token", "issuer": f"{base}/v2.0",
                       "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode"})

    def post(self, url, params=None, data=None, headers=None, **kwargs):
        fields = data if isinstance(data, dict) else {}
        ok = bool(secret) and fields.get("client_secret") == secret
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"token request to {urlparse(url).hostname}: secret {'ok' if ok else 'WRONG'}\n")
        if not ok:
            return Answer({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret"},
                          401)
        return Answer({"access_token": issued, "expires_in": 3600, "token_type": "Bearer"})

    msal_client.MsalClient.get = get
    msal_client.MsalClient.post = post
    return cli.main(argv)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if args[:1] == ["fake-entra"]:
        return fake_entra_cli(args[1:])
    if args[:1] == ["reader"]:
        reader_loop(*args[1:4])
        return 0
    if args[:1] == ["timed-ingest"]:
        return timed_cli(args[1], args[2:])
    if args == ["--write-doc"]:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(render_doc(), encoding="utf-8")
        print(f"wrote {DOC}")
        return 0
    print(render_doc())
    return 0


if __name__ == "__main__":
    sys.exit(main())
