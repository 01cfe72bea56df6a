"""Portable (issue 25): every module imports, and the run lock and the reader's spill folder work, in a Python where
``fcntl`` cannot be imported and ``os.getuid`` does not exist (as on Windows); no module uses either off a guard."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from tests.conftest import ROOT

PACKAGES = ("ingest", "queries", "pages", "simulator")


def page_scripts() -> list[str]:
    """pages/*.py that draw a page when imported (Streamlit runs them as scripts): a top-level call of ``st.*`` or
    ``common.*`` outside a function."""
    def draws(node: ast.AST) -> bool:
        return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)
                   and n.func.value.id in ("st", "common") for n in ast.walk(node))

    return [path.stem for path in sorted((ROOT / "pages").glob("*.py"))
            if any(draws(node) for node in ast.parse(path.read_text(encoding="utf-8")).body
                   if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))]


# Runs in a fresh interpreter: fcntl made unimportable and os.getuid deleted before anything of ours is imported.
CHILD = r"""
import ast, importlib, json, os, pkgutil, sys, tempfile
sys.modules["fcntl"] = None
del os.getuid
packages, scripts, root = json.loads(sys.argv[1])
failed, names = [], []
for pkg in packages:
    module = importlib.import_module(pkg)
    names += [m.name for m in pkgutil.walk_packages(module.__path__, pkg + ".") if not m.name.endswith("__main__")
              and m.name.rpartition(".")[2] not in (scripts if pkg == "pages" else ())]
names.append("serve")  # builds the st.App without serving; app.py draws the dashboard when imported
for script in scripts:  # a page script's own imports (importing it would draw the page)
    tree = ast.parse(open(os.path.join(root, "pages", script + ".py"), encoding="utf-8").read())
    names += [a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names]
    names += [n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module and n.level == 0]
for name in names:
    try:
        importlib.import_module(name)
    except BaseException as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
from ingest import dbfile
from ingest.run import RunLock
spill = dbfile._spill_directory()
dbfile._host_connection().execute("SELECT 1").fetchone()  # the reader's DuckDB, spilling to that folder
lock = RunLock(os.path.join(tempfile.mkdtemp(), "x.run.lock"))
first = lock.acquire()
second = RunLock(lock.path).acquire()
lock.release()
third = RunLock(lock.path).acquire()
print(json.dumps({"imported": len(names), "failed": failed, "spill": spill, "locks": [first, second, third]}))
"""


def test_every_module_imports_without_fcntl_and_getuid(tmp_path):
    scripts = page_scripts()
    assert "overview" in scripts and "common" not in scripts
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps([PACKAGES, scripts, str(ROOT)])], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin",
                                                                            "HOME": str(tmp_path),
                                                                            "TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["failed"] == []
    modules = sum(1 for p in PACKAGES for _ in (ROOT / p).rglob("*.py"))
    assert result["imported"] >= modules - len(scripts)  # every module (bar __main__s), page scripts' imports too
    assert result["spill"].startswith(str(tmp_path)) and result["spill"].endswith("provlens-read-spill")
    assert result["locks"] == [True, False, True]  # exclusive while held, free again after release


def test_no_fcntl_or_getuid_outside_a_guard():
    """fcntl nowhere in our code; os.getuid only behind ``hasattr(os, "getuid")`` on the same line."""
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")] + [ROOT / "app.py", ROOT / "serve.py"]
    offenders = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if "fcntl" in code or ("getuid" in code and 'hasattr(os, "getuid")' not in code):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_run_lock_names_its_holder_and_dies_with_it(tmp_path):
    """The filelock-based run lock keeps the flock semantics: exclusive, the holder's pid in the busy message, and
    free again when the holder is killed (SIGKILL: no chance to release it)."""
    import os
    import signal
    import time

    from ingest.run import RunLock

    path = str(tmp_path / "x.run.lock")
    code = (f"import time\nfrom ingest.run import RunLock\nlock = RunLock({path!r})\nassert lock.acquire()\n"
            "print('held', flush=True)\ntime.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = RunLock(path)
        assert not lock.acquire() and lock.holder() == str(holder.pid)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)
        holder.stdout.close()
    deadline = time.monotonic() + 10
    while not lock.acquire():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    lock.release()
