"""The installed package works from outside the clone (issue 25: `pip install .`, then `provlens ...` elsewhere).

What it does: copies the clone's sources to a temporary folder and builds the wheel there
(`python -m build --wheel --no-isolation`, as `pip install .` would build it), creates a fresh venv, installs that
wheel with `pip install --no-deps --no-index`, and runs from a folder outside the clone:
`provlens ingest demo --db x.duckdb`, `provlens queries export events --db x.duckdb --out e.csv`,
`provlens doctor --help` (the same answer as `python -m ingest doctor --help`) and `provlens dashboard` (until
`/_stcore/health` answers `ok`, the page's HTML and the charts' plotly.js load and the warm-up ran on x.duckdb).
Every provlens module the venv imports must come from its site-packages, and the dashboard must serve the
installed serve.py and static/.

What it proves: the wheel holds every module and data file the commands and the dashboard read at run time (no
secrets.toml), the console script and its subcommands work with the clone out of reach, and the installed
dependency set (the tested lock: requirements.txt + constraints.txt) satisfies the wheel's declared dependencies
(`pip check`).

What it does not prove: that PyPI resolves pyproject's dependency ranges today (installing them from PyPI takes
minutes; the fresh venv reaches the already installed packages through a .pth file, and
tests/test_package_metadata.py checks that every pin of requirements.txt and constraints.txt lies inside those
ranges), nor a build with build isolation (a newer setuptools from PyPI) or on another OS.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
# the test runner's own site-packages: the fresh venv reaches the installed dependencies through it
DEPS_SITE = Path(sysconfig.get_paths()["purelib"])
SKIP_FOR_BUILD = shutil.ignore_patterns(".git", ".venv", "data", "bench", "tests", "docs", "build", "*.egg-info",
                                        "__pycache__", "*.duckdb", "*.duckdb.wal", "test-output", ".tools", ".ci",
                                        ".pytest_cache", ".ruff_cache")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list, cwd: Path, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def _get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.read()


def _build_wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=SKIP_FOR_BUILD, symlinks=True)
    (src / ".streamlit" / "secrets.toml").write_text('[auth]\nclient_secret = "must-not-ship"\n')  # a deployment's
    _run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", tmp_path / "dist", src],
         cwd=tmp_path, env=os.environ.copy(), timeout=180)
    wheels = list((tmp_path / "dist").glob("provlens-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _check_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not [n for n in names if "secrets.toml" in n], "a secrets.toml must never be packaged"
    expected = set()
    for package in ("ingest", "queries", "simulator", "provlens"):
        expected |= {p.relative_to(ROOT).as_posix() for p in (ROOT / package).rglob("*.py")}
    expected |= {"provlens/dashboard/" + p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").rglob("*.py")}
    expected |= {f"provlens/dashboard/{name}" for name in ("app.py", "serve.py", ".streamlit/config.toml")}
    expected |= {"provlens/dashboard/" + p.relative_to(ROOT).as_posix() for p in (ROOT / "static").iterdir()}
    expected |= {"provlens/examples/" + p.relative_to(ROOT / "examples").as_posix()
                 for p in (ROOT / "examples").rglob("*") if p.is_file()}
    missing = sorted(expected - names)
    assert not missing, f"the wheel lacks files the clone has (pyproject.toml [tool.setuptools]): {missing}"


def _make_venv(tmp_path: Path, wheel: Path) -> tuple[Path, Path]:
    venv = tmp_path / "v"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path, env=os.environ.copy())
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path,
                     env=os.environ.copy()).stdout.strip())
    # the dependencies already installed for the tests (pip itself too); provlens goes into the venv's own site
    (site / "_provlens_test_deps.pth").write_text(f"{DEPS_SITE}\n")
    _run([py, "-m", "pip", "install", "--no-deps", "--no-index", "--disable-pip-version-check", "-q", wheel],
         cwd=tmp_path, env=os.environ.copy())
    check = _run([py, "-m", "pip", "check", "--disable-pip-version-check"], cwd=tmp_path, env=os.environ.copy())
    assert "No broken requirements" in check.stdout, check.stdout
    return venv, site


def test_the_wheel_installs_and_every_command_runs_outside_the_clone(tmp_path):
    assert ROOT not in tmp_path.resolve().parents
    wheel = _build_wheel(tmp_path)
    _check_wheel_contents(wheel)
    venv, site = _make_venv(tmp_path, wheel)
    provlens, py = venv / "bin" / "provlens", venv / "bin" / "python"
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PROVLENS_")}
    env["PROVLENS_READ_KEEP_S"] = "0"

    # every provlens module resolves to the venv's site-packages, never to the clone
    where = json.loads(_run([py, "-c", "import json, ingest, queries, simulator, provlens, provlens.launch; "
                                       "print(json.dumps([m.__file__ for m in (ingest, queries, simulator, provlens, "
                                       "provlens.launch)]))"], cwd=work, env=env).stdout)
    for path in where:
        assert Path(path).resolve().is_relative_to(site.resolve()), path
    dash = Path(_run([py, "-c", "from provlens.launch import dashboard_dir; print(dashboard_dir())"],
                     cwd=work, env=env).stdout.strip())
    assert dash == site / "provlens" / "dashboard"

    version = _run([provlens, "--version"], cwd=work, env=env).stdout.split()
    meta = _run([py, "-c", "import importlib.metadata as m, ingest; print(m.version('provlens'), ingest.__version__)"],
                cwd=work, env=env).stdout.split()
    assert version == ["provlens", meta[0]] and meta[0] == meta[1]

    # python -v names every file it imports: none from the clone (its own .venv aside, where the dependencies live)
    demo = _run([py, "-v", provlens, "ingest", "demo", "--db", "x.duckdb"], cwd=work, env=env)
    imported = set(re.findall(r"^# code object from '?([^'\n]+?)'?$", demo.stderr, re.M))
    assert any(Path(f).is_relative_to(site / "ingest") for f in imported), "python -v listed no ingest module"
    from_clone = [f for f in imported if Path(f).is_relative_to(ROOT) and not Path(f).is_relative_to(DEPS_SITE)]
    assert not from_clone, from_clone
    _run([provlens, "queries", "export", "events", "--db", "x.duckdb", "--out", "e.csv"], cwd=work, env=env)
    with duckdb.connect(str(work / "x.duckdb"), read_only=True) as con:
        stored = con.execute("SELECT count(*) FROM events").fetchone()[0]
    with open(work / "e.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert stored > 0 and len(rows) - 1 == stored
    manifest = json.loads((work / "e.csv.manifest.json").read_text())
    assert manifest["provlens_version"] == meta[0] and manifest["rows"] == stored

    # doctor is ingest's: the same answer (exit code and output) either way
    doctor = subprocess.run([provlens, "doctor", "--help"], cwd=work, env=env, capture_output=True, text=True)
    direct = subprocess.run([py, "-m", "ingest", "doctor", "--help"], cwd=work, env=env, capture_output=True,
                            text=True)
    assert (doctor.returncode, doctor.stdout, doctor.stderr) == (direct.returncode, direct.stdout, direct.stderr)

    _serve_dashboard(provlens, work, env, site)


def _serve_dashboard(provlens: Path, work: Path, env: dict, site: Path) -> None:
    port = _free_port()
    log = work / "dashboard.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(provlens), "dashboard", "--db", "x.duckdb", "--port", str(port)], cwd=work,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline, health = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = _get(base + "/_stcore/health")
                break
            except OSError:
                time.sleep(0.3)
        assert health == (200, b"ok"), f"no health answer; exit {proc.poll()}\n{log.read_text()}"
        status, page = _get(base + "/")
        assert status == 200 and b'<div id="root">' in page
        bundle = next((site / "provlens" / "dashboard" / "static").glob("plotly-basic-*.min.js"))
        assert _get(f"{base}/app/static/{bundle.name}") == (200, (ROOT / "static" / bundle.name).read_bytes())
        # the process is Streamlit's (exec) serving the installed serve.py; its warm-up read x.duckdb
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert str(site / "provlens" / "dashboard" / "serve.py").encode() in cmdline
        text = log.read_text()
        assert re.search(r"provlens: warmed up in [\d.]+ s \(imports and charts [\d.]+ s, database [\d.]+ s\)",
                         text), text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
