"""pyproject.toml against the tested lock and the tree, and the `provlens` command's own dispatching (issue 25).

requirements.txt and constraints.txt are the exact pins the suite runs on; pyproject's dependencies are ranges.
These tests hold them together: every package of requirements.txt is a dependency (same marker) and its pin, like
constraints.txt's, lies inside the range; every Python package of the tree is packaged; the version has one home.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirement_lines(path: Path) -> list[Requirement]:
    out = []
    for line in path.read_text().splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")):
            out.append(Requirement(line))
    return out


def _dependencies() -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for r in map(Requirement, PYPROJECT["project"]["dependencies"])}


def test_every_pinned_runtime_requirement_is_a_dependency_whose_range_holds_the_pin():
    deps = _dependencies()
    pinned = _requirement_lines(ROOT / "requirements.txt")
    assert pinned
    for req in pinned:
        name = canonicalize_name(req.name)
        assert name in deps, f"{req.name} is in requirements.txt but not in pyproject.toml's dependencies"
        (spec,) = req.specifier  # requirements.txt pins exactly
        assert spec.operator == "==", req
        assert deps[name].specifier.contains(spec.version, prereleases=True), \
            f"requirements.txt pins {req}, outside pyproject's {deps[name]}"
        assert str(deps[name].marker or "") == str(req.marker or ""), (req, deps[name])
    extra = set(deps) - {canonicalize_name(r.name) for r in pinned}
    assert not extra, f"pyproject.toml depends on {sorted(extra)}, which requirements.txt does not pin (the lock)"


def test_constraints_pins_lie_inside_the_dependency_ranges():
    deps = _dependencies()
    constrained = {canonicalize_name(r.name): r for r in _requirement_lines(ROOT / "constraints.txt")}
    for name, dep in deps.items():
        if dep.marker is not None and not dep.marker.evaluate():
            continue
        assert name in constrained, f"{name} is a dependency but constraints.txt does not pin it"
        (spec,) = constrained[name].specifier
        assert dep.specifier.contains(spec.version, prereleases=True), (constrained[name], dep)


def test_every_package_of_the_tree_is_packaged():
    tool = PYPROJECT["tool"]["setuptools"]
    listed = set(tool["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for top in ("ingest", "queries", "simulator", "provlens")
             for p in (ROOT / top).rglob("__init__.py")}
    found |= {"provlens.dashboard." + ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "pages").rglob(
        "__init__.py")}
    assert found - listed == set(), f"add these to [tool.setuptools] packages in pyproject.toml: {found - listed}"
    assert tool["package-dir"] == {"provlens.dashboard": ".", "provlens.dashboard.pages": "pages",
                                   "provlens.examples": "examples"}


def test_the_version_has_one_home():
    project = PYPROJECT["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "ingest.__version__"}
    homes = [p for p in ROOT.rglob("*.py") if ".venv" not in p.parts and "bench" not in p.parts
             and re.search(r"^__version__\s*=", p.read_text(encoding="utf-8", errors="replace"), re.M)]
    assert homes == [ROOT / "ingest" / "__init__.py"]


def test_license_and_changelog():
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    from ingest import __version__

    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "keepachangelog.com" in changelog
    assert re.search(rf"^## \[{re.escape(__version__)}\] - \d{{4}}-\d\d-\d\d$", changelog, re.M), \
        f"CHANGELOG.md has no section for version {__version__}"


def _provlens(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "provlens", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_bad_arguments_exit_2_with_one_line():
    for args in ([], ["bogus"], ["--bogus"], ["dashboard", "--port", "http"], ["dashboard", "--port", "70000"]):
        proc = _provlens(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_version_help_and_pass_through():
    from ingest import __version__

    assert _provlens("--version").stdout.strip() == f"provlens {__version__}"
    helptext = _provlens("--help").stdout
    for name in ("ingest", "queries", "dashboard", "doctor"):
        assert re.search(rf"^  {name}\s", helptext, re.M), helptext
    # the rest of the line goes to the module's own command line, unchanged: the same answer either way
    for args, module in ((["ingest", "demo", "--help"], ["ingest", "demo", "--help"]),
                         (["queries", "list"], ["queries", "list"]),
                         (["doctor", "--help"], ["ingest", "doctor", "--help"]),
                         (["ingest", "demo", "--users", "x"], ["ingest", "demo", "--users", "x"])):
        ours = _provlens(*args)
        theirs = subprocess.run([sys.executable, "-m", *module], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr), args
    assert _provlens("dashboard", "--help").returncode == 0


def test_read_only_dashboard_never_builds_the_demo(tmp_path):
    """`provlens dashboard --read-only` (a container beside the ingest job): a missing database stays missing."""
    from streamlit.testing.v1 import AppTest

    db = tmp_path / "not-yet.duckdb"
    old = {k: os.environ.get(k) for k in ("PROVLENS_DB", "PROVLENS_NO_DEMO")}
    os.environ.update(PROVLENS_DB=str(db), PROVLENS_NO_DEMO="1")
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    assert not at.exception
    assert any("the ingest job creates it on its first run" in el.value for el in at.info), [e.value for e in at.info]
    assert not db.exists() and not list(tmp_path.iterdir())
