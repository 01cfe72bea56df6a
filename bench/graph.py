"""B1 and B3: pulling from the fake Graph server on 127.0.0.1 (a separate process), end to end.

B1: ``python -m ingest graph`` (raw pages -> DuckDB) vs the typed msgraph-sdk path on the same server
and data. B3: a backfill under Graph's throttle, time-scaled (the budget and the page latency divided
by the same factor) so 2,000 pages take minutes instead of an hour; the ratio to the minimum is what counts.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

from bench.harness import PY, ROOT, alternate, python_measured

TOKEN = "provlens-fake-graph-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m simulator.graph_server`` in its own process, stopped on exit."""

    def __init__(self, data: Path, *extra: str):
        self.port = _free_port()
        self.proc = subprocess.Popen([PY, "-m", "simulator.graph_server", "--port", str(self.port), "--data",
                                      str(data), *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        line = self.proc.stdout.readline().decode()  # "fake Graph serving N events at URL" once it listens
        if "serving" not in line:
            self.stop()
            raise RuntimeError(f"fake Graph server did not start: {line}")
        self.url = f"http://127.0.0.1:{self.port}/v1.0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _fresh(path: Path) -> str:
    for p in (path, Path(str(path) + ".wal"), Path(str(path) + ".run.lock")):
        if p.exists():
            p.unlink()
    return str(path)


def _pull(url: str, db: Path, *extra: str):
    return python_measured(["-m", "ingest", "graph", "--db", _fresh(db), "--graph-url", url, "--since",
                            "2026-09-01T00:00:00Z", "--until", "2026-11-02T00:00:00Z", "--no-jobs",
                            "--no-audit-logs", "-q", *extra],
                           env={"PROVLENS_GRAPH_TOKEN": TOKEN})


def b1(data: Path, events: int, work: Path, reps: int, typed_pages: int = 3) -> dict:
    ours_db, typed_db = work / "b1-ours.duckdb", work / "b1-typed.duckdb"
    with Server(data) as server:
        def ours():
            return _pull(server.url, ours_db, "--rate", "off")

        def typed():
            return python_measured(["-m", "bench.sides", "typed_graph", server.url, TOKEN, _fresh(typed_db),
                                    str(typed_pages)])

        comp = alternate(ours, typed, reps)
    import duckdb

    con = duckdb.connect(str(ours_db), read_only=True)
    loaded = con.execute("SELECT count(*) FROM events").fetchone()[0]
    con.close()
    typed_rows = int(comp.b[-1].stdout.strip().splitlines()[-1])
    ours_eps = loaded / comp.a_median
    typed_eps = typed_rows / comp.b_median
    return {"title": "Graph ingest end to end (fake Graph server, pacing off)", "events": loaded,
            "ours_s": comp.a_median, "ours_eps": ours_eps, "typed_rows": typed_rows, "typed_s": comp.b_median,
            "typed_eps": typed_eps, "ratio": ours_eps / typed_eps, "reps": reps,
            "summary": f"{ours_eps:,.0f} events/s vs typed SDK {typed_eps:,.0f}/s: {ours_eps / typed_eps:,.0f}×",
            "met": "yes" if ours_eps >= 25_000 and ours_eps / typed_eps >= 100 else "no",
            "text": f"`python -m ingest graph --rate off` loaded {loaded:,} events in {comp.a_median:.1f} s "
                    f"(median of {reps}): **{ours_eps:,.0f} events/s** into the store. The typed path "
                    f"(`client.audit_logs.provisioning.get()` + `with_url(nextLink)`, models to rows, rows into "
                    f"DuckDB) read {typed_rows:,} events ({typed_pages} pages of 999) in {comp.b_median:.1f} s: "
                    f"**{typed_eps:,.0f} events/s**. Ratio **{ours_eps / typed_eps:,.0f}×**. Both include process "
                    "start-up; the typed side reads only a few pages because it would take hours for all."}


def b3(data: Path, work: Path, pages: int = 2000, scale: float = 10.0) -> dict:
    """Budget 5 requests / (10 s / scale), each page (1 s / scale) late; minimum = pages read x (2 s / scale)
    (``pages`` sets the page size; the data rarely divides evenly, so a few more pages than asked are read)."""
    per = 10.0 / scale
    latency = 1.0 / scale
    with Server(data, "--throttle", f"5/{per:g}s", "--latency", f"{latency:g}") as server:
        db = work / "b3.duckdb"
        run = _pull(server.url, db, "--rate", f"5/{per:g}s", "--top", str(_top_for(data, pages)),
                    "--slice", "90d")
        log = run.stderr
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    got_pages, throttled, retries = con.execute(
        "SELECT sum(pages), sum(throttled), sum(retries) FROM ingest_runs WHERE source = 'graph'").fetchone()
    con.close()
    minimum = got_pages * 2.0 / scale
    return {"title": "backfill under Graph's throttle (time-scaled)", "pages": pages, "scale": scale,
            "seconds": run.seconds, "minimum_s": minimum, "ratio": run.seconds / minimum, "log_tail": log[-600:],
            "summary": f"{run.seconds:.0f} s for {got_pages:,} pages vs minimum {minimum:.0f} s: "
                       f"{run.seconds / minimum:.2f}×, {throttled} 429s (time scale 1/{scale:g})",
            "met": "yes" if run.seconds / minimum <= 1.15 and throttled == 0 else "no",
            "throttled": throttled, "retries": retries, "pages_read": got_pages,
            "text": f"{got_pages:,} pages (about {pages:,} asked), budget 5 requests per {per:g} s and {latency:g} s "
                    f"per page (Graph's 5/10 s and ~1 s, divided by {scale:g}): **{run.seconds:.0f} s** vs the "
                    "theoretical minimum "
                    f"{minimum:.0f} s (pages read × {2 / scale:g} s) = **{run.seconds / minimum:.2f}×**. "
                    f"429 answers: **{throttled}**, retries: {retries} (pages, 429s and retries from the run "
                    "record in the store)."}


def _top_for(data: Path, pages: int) -> int:
    with open(data / "events.ndjson", "rb") as fh:
        n = sum(1 for _ in fh)
    return max(1, n // pages)

