"""MotherDuck is not supported (issue 28 item 6): an ``md:`` database, from --db, PROVLENS_DB or provlens.toml, is
refused with one clear line and exit code 2 by every command and by the dashboard; nothing is created, and a token
in the DSN is never echoed."""

from __future__ import annotations

import os

import pytest
from streamlit.testing.v1 import AppTest

from ingest import exitcodes
from tests.conftest import ROOT, run_cli

DSN = "md:provlens_test?motherduck_token=secret-token-value"


def _one_line_refusal(proc) -> str:
    assert proc.returncode == exitcodes.USAGE, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "MotherDuck" in lines[0] and "not supported" in lines[0] and "lake" in lines[0]
    assert "secret-token-value" not in proc.stderr + proc.stdout
    return lines[0]


@pytest.mark.parametrize("argv", [
    ("ingest", "migrate", "--db", DSN),
    ("ingest", "demo", "--db", DSN),
    ("queries", "export", "events", "--db", DSN, "--out", "OUT"),
    ("provlens", "dashboard", "--db", DSN),
])
def test_an_md_database_flag_is_refused_in_one_line(argv, tmp_path):
    argv = tuple(str(tmp_path / "x.csv") if a == "OUT" else a for a in argv)
    before = set(os.listdir(ROOT))
    _one_line_refusal(run_cli(*argv))
    assert set(os.listdir(ROOT)) == before  # no local file named like the DSN
    assert not (tmp_path / "x.csv").exists()


def test_an_md_database_from_the_environment_or_the_config_is_refused(tmp_path):
    _one_line_refusal(run_cli("ingest", "migrate", env={"PROVLENS_DB": DSN}))
    config = tmp_path / "provlens.toml"
    config.write_text(f'db = "{DSN}"\n', encoding="utf-8")
    _one_line_refusal(run_cli("ingest", "migrate", env={"PROVLENS_DB": "", "PROVLENS_CONFIG": str(config)}))


def test_doctor_fails_its_config_check_on_an_md_database():
    proc = run_cli("ingest", "doctor", env={"PROVLENS_DB": DSN, "PROVLENS_CONFIG": "", "PROVLENS_GRAPH_TOKEN": ""})
    assert "Traceback" not in proc.stderr
    (config,) = [line for line in proc.stdout.splitlines() if line.startswith(("ok ", "FAIL ", "skip "))
                 and " config:" in line]
    assert config.startswith("FAIL") and "MotherDuck" in config and "not supported" in config
    assert "secret-token-value" not in proc.stdout + proc.stderr
    assert proc.returncode != exitcodes.OK


def test_the_dashboard_says_so_on_the_page(monkeypatch):
    monkeypatch.setenv("PROVLENS_DB", DSN)
    monkeypatch.delenv("PROVLENS_LAKE", raising=False)
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    (error,) = at.error
    assert "MotherDuck" in error.value and "not supported" in error.value
    assert "secret" not in error.value

