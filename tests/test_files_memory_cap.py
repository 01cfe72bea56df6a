"""``ingest files`` holds at most about its memory cap of a file, whatever the file expands to (issue 27: a
4.5 MB .json.gz expanding to 1 GiB took 2.1 GB RSS). The cap is lowered here (PROVLENS_FILES_MAX_DOC_MB) so a
small gzip expands far past it; the child's peak RSS is measured by a wrapper process whose only child it is."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import duckdb
import pytest

from tests.conftest import ROOT

CAP_MB = 2
EXPANDED_MB = 200
PAD = b" " * (1 << 20)

_MEASURE = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
            "sys.stderr.write(p.stderr)")


def _ingest(db, path) -> tuple[int, int, str]:
    """(exit code, peak RSS in MiB, stderr) of `python -m ingest files` under the lowered cap."""
    env = {"PROVLENS_FILES_MAX_DOC_MB": str(CAP_MB), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "ingest", "files", "--db", str(db),
                           "-q", str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    code, rss_kib = proc.stdout.split()
    return int(code), int(rss_kib) // 1024, proc.stderr


def _event(i: int) -> bytes:
    return json.dumps({"id": f"e{i}", "activityDateTime": "2026-10-01T00:00:00Z"}).encode()


def _write(path, kind: str) -> int:
    """A gzip of EXPANDED_MB MiB (mostly whitespace between events); returns how many events it holds."""
    with gzip.open(path, "wb", compresslevel=1) as fh:
        if kind == "page":
            fh.write(b'{"@odata.context": "x", "value": [' + _event(0))
            for k in range(1, EXPANDED_MB + 1):
                fh.write(b"," + (b'{"activityDateTime": "2026-10-01T00:00:00Z"}' if k == 7 else _event(k)) + PAD)
            fh.write(b"]}")
        else:  # NDJSON in a file named .json.gz (not DuckDB's fast path)
            for k in range(EXPANDED_MB):
                fh.write((b'{"activityDateTime": "2026-10-01T00:00:00Z"}' if k == 6 else _event(k)) + b"\n" + PAD
                         + b"\n")
    return EXPANDED_MB + 1 if kind == "page" else EXPANDED_MB


@pytest.mark.parametrize("kind", ["page", "ndjson"])
def test_a_gzip_expanding_far_past_the_cap_is_streamed(tmp_path, kind):
    tiny = tmp_path / "tiny.json"
    tiny.write_bytes(_event(0))
    code, baseline, err = _ingest(tmp_path / "tiny.duckdb", tiny)
    assert code == 0, err

    big = tmp_path / "big.json.gz"
    total = _write(big, kind)
    assert big.stat().st_size < 2 * 1024 * 1024  # ~1 MB on disk, EXPANDED_MB MiB inside
    db = tmp_path / "s.duckdb"
    code, peak, err = _ingest(db, big)
    assert code == 0, err
    con = duckdb.connect(str(db), read_only=True)
    ids = {r[0] for r in con.execute("SELECT id FROM events").fetchall()}
    rejects = con.execute("SELECT position, reason FROM ingest_rejects").fetchall()
    con.close()
    assert len(ids) == total - 1
    assert rejects == [("value[7]" if kind == "page" else "line 13", "event has no id")]
    # Whole-file reading held >= EXPANDED_MB MiB (several times that once parsed); streaming holds a few caps.
    print(f"{kind}: peak RSS {peak} MiB, baseline {baseline} MiB")
    assert peak - baseline < 20 * CAP_MB + 40, (peak, baseline)


def test_an_item_bigger_than_the_cap_is_rejected_and_the_rest_lands(tmp_path):
    big = tmp_path / "fat.json.gz"
    fat = {"id": "fat", "activityDateTime": "2026-10-01T00:00:00Z", "pad": "x" * (3 * CAP_MB << 20)}
    with gzip.open(big, "wb", compresslevel=1) as fh:
        fh.write(b"[" + _event(0) + b"," + json.dumps(fat).encode() + b"," + _event(1) + b"]")
    db = tmp_path / "s.duckdb"
    code, _, err = _ingest(db, big)
    con = duckdb.connect(str(db), read_only=True)
    ids = {r[0] for r in con.execute("SELECT id FROM events").fetchall()}
    rejects = con.execute("SELECT position, reason FROM ingest_rejects").fetchall()
    con.close()
    assert ids == {"e0"} and code == 0, err  # the array cannot be followed past an item it cannot hold
    assert len(rejects) == 1 and rejects[0][0] == "item[1]", rejects
    assert rejects[0][1].startswith(f"item bigger than the {CAP_MB} MB cap") and "NDJSON" in rejects[0][1]
