"""Measuring: wall time and peak memory of child processes, alternating A/B repetitions, medians."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    stdout: str = ""
    stderr: str = ""


def run_measured(args: list[str], *, env: dict | None = None, check: bool = True, timeout: float = 7200) -> Run:
    """Run a child process; return its wall time and its own peak RSS (from wait4's rusage)."""
    full_env = {**os.environ, **(env or {})}
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = b"", b""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    seconds = time.perf_counter() - t0
    peak = _peak_from_stderr(err.decode(errors="replace"))  # reported by bench/peak.py in the child
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}:\n{err.decode(errors='replace')[-2000:]}")
    return Run(seconds, peak, out.decode(errors="replace"), err.decode(errors="replace"))


def python_measured(code_or_module: list[str], **kw) -> Run:
    """Run ``python bench/peak.py ARGS``: the child reports its own peak RSS on its last stderr line."""
    return run_measured([PY, str(ROOT / "bench" / "peak.py"), *code_or_module], **kw)


def _peak_from_stderr(err: str) -> float:
    for line in reversed(err.strip().splitlines()):
        if line.startswith("BENCH_PEAK_RSS_MB="):
            return float(line.split("=", 1)[1])
    return float("nan")


@dataclass
class Comparison:
    """Both sides measured alternately in the same run."""

    a: list[Run] = field(default_factory=list)
    b: list[Run] = field(default_factory=list)

    @property
    def a_median(self) -> float:
        return statistics.median(r.seconds for r in self.a)

    @property
    def b_median(self) -> float:
        return statistics.median(r.seconds for r in self.b)


def alternate(side_a, side_b, reps: int) -> Comparison:
    comp = Comparison()
    for i in range(reps):
        first, second = (side_a, side_b) if i % 2 == 0 else (side_b, side_a)
        r1, r2 = first(), second()
        if first is side_a:
            comp.a.append(r1)
            comp.b.append(r2)
        else:
            comp.a.append(r2)
            comp.b.append(r1)
    return comp


def percentile(values: list[float], p: float) -> float:
    data = sorted(values)
    if not data:
        return float("nan")
    k = (len(data) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def machine() -> dict:
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            mem = f"{int(fh.readline().split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    import duckdb
    import pandas

    return {"cpus": os.cpu_count(), "cpu": cpu, "memory": mem, "python": platform.python_version(),
            "duckdb": duckdb.__version__, "pandas": pandas.__version__, "platform": platform.platform(),
            "load_at_start": f"{load:.2f}", **speed_check()}


def speed_check(reps: int = 5) -> dict:
    """A fixed workload timed at the start of a run (median ms of ``reps``): one DuckDB thread hashing 20M
    integers, and a Python loop. This machine's speed drifts between runs (shared host, memory reclaim), so
    runs are compared by these, not only by their load average."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 1")
    sql = "SELECT sum(hash(i)) FROM range(20000000) t(i)"

    def python_loop() -> int:
        return sum(i * i % 7 for i in range(2_000_000))

    timings = {}
    for name, work in (("speed_duckdb_ms", lambda: con.execute(sql).fetchone()), ("speed_python_ms", python_loop)):
        runs = []
        for _ in range(reps):
            t0 = time.perf_counter()
            work()
            runs.append(time.perf_counter() - t0)
        timings[name] = round(statistics.median(runs) * 1000, 1)
    con.close()
    return timings
