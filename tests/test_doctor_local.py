"""`python -m ingest doctor`'s local checks: an unwritable database folder, a database on a network share, free disk
space, an unreadable SCIM path, a bad mapping file and a bad config. Graph is not configured in these configs (only a
files/scim source), so its checks say "skipped" and the exit code comes from the local checks.

No SMB or NFS mount exists on the test machines, so the network-share case reads a mountinfo file written by the test
(injected through ``run_doctor``'s ``mountinfo`` parameter). The tests run as root here, where permission bits do not
stop writes: the unwritable folder is made immutable with ``chattr +i`` when ``chmod`` is not enough (and checked to
be really unwritable first); an unreadable file is a path that cannot be opened and one whose read fails with EIO."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess

import pytest

from ingest import exitcodes
from ingest.cli import build_parser
from ingest.doctor import run_doctor
from ingest.scim.mapping import MappingError, load_mapping
from tests.conftest import ROOT, run_cli

SAMPLE = ROOT / "examples" / "mappings" / "json-access-log.sample.jsonl"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """The in-process runs read the environment: none of the caller's provlens or Azure settings leak in."""
    for name in list(os.environ):
        if name.startswith(("PROVLENS_", "AZURE_")):
            monkeypatch.delenv(name)


def write_config(tmp_path, db, scim_paths: list[str] | None = None, mapping: str | None = None) -> str:
    cfg = tmp_path / "provlens.toml"
    text = f'db = "{db}"\n[[sources]]\ntype = "files"\npaths = ["{tmp_path}/exports/*.json"]\n'
    if scim_paths is not None:
        text += f'[[sources]]\ntype = "scim"\npaths = {json.dumps(scim_paths)}\n'
        if mapping:
            text += f'mapping = "{mapping}"\n'
    cfg.write_text(text, encoding="utf-8")
    return str(cfg)


def doctor(*args: str):
    env = {"PROVLENS_DB": "", "PROVLENS_CONFIG": "", "PROVLENS_GRAPH_TOKEN": ""}
    proc = run_cli("ingest", "doctor", *args, env=env, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def lines(text: str) -> dict[str, str]:
    return {line.split(None, 1)[1].split(":", 1)[0]: line for line in text.splitlines()
            if line.startswith(("ok ", "FAIL ", "skip "))}


def in_process(argv: list[str], mountinfo: str) -> tuple[int, dict[str, str]]:
    args = build_parser().parse_args(["doctor", *argv])
    out = io.StringIO()
    code = run_doctor(args, mountinfo=mountinfo, stream=out)
    return code, lines(out.getvalue())


def can_create_in(folder) -> bool:
    try:
        (folder / "probe").write_bytes(b"x")
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


def test_graph_checks_are_skipped_without_a_graph_source(tmp_path):
    proc = doctor("--config", write_config(tmp_path, tmp_path / "x.duckdb"))
    assert proc.returncode == exitcodes.OK, proc.stdout
    got = lines(proc.stdout)
    for title in ("credential", "Graph reachable", "token accepted", "AuditLog.Read.All", "Entra ID P1/P2 licence",
                  "service principals", "Synchronization.Read.All"):
        assert "skipped: no Graph source configured" in got[title]
    assert got["database writable"].startswith("ok ")


@pytest.fixture
def locked_folder(tmp_path):
    """A folder no one (root included) can create files in."""
    folder = tmp_path / "locked"
    folder.mkdir()
    os.chmod(folder, 0o555)
    immutable = False
    if can_create_in(folder):  # root: permission bits do not apply; an immutable folder stops root too
        subprocess.run(["chattr", "+i", str(folder)], check=True)
        immutable = True
    assert not can_create_in(folder), "could not make a folder unwritable on this machine"
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    os.chmod(folder, 0o755)


def test_unwritable_database_folder(tmp_path, locked_folder):
    db = locked_folder / "provlens.duckdb"
    proc = doctor("--config", write_config(tmp_path, db))
    assert proc.returncode == exitcodes.DATABASE
    line = lines(proc.stdout)["database writable"]
    assert line.startswith("FAIL ") and f"cannot write in {locked_folder}" in line and "write access" in line
    assert not db.exists()


def test_database_on_a_network_share(tmp_path):
    """A mountinfo file (as the kernel writes it) that puts tmp_path/share on an SMB share (Azure Files)."""
    share = tmp_path / "share"
    share.mkdir()
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        f"98 27 0:52 / {share} rw,relatime shared:44 - cifs //acct.file.core.windows.net/data rw,vers=3.1.1\n",
        encoding="utf-8")
    cfg = write_config(tmp_path, share / "provlens.duckdb")
    code, got = in_process(["--config", cfg], str(mountinfo))
    assert code == exitcodes.DATABASE
    assert got["database on a local disk"].startswith("FAIL ")
    assert "cifs //acct.file.core.windows.net/data" in got["database on a local disk"]
    assert got["database writable"].startswith("ok ")  # writable, but not safe

    # the same file elsewhere (on the ext4 root) is fine; a space in a mount point is written as \040
    code, got = in_process(["--config", write_config(tmp_path, tmp_path / "local.duckdb")], str(mountinfo))
    assert code == exitcodes.OK and got["database on a local disk"].startswith("ok ")
    spaced = tmp_path / "my share"
    spaced.mkdir()
    mountinfo.write_text("27 1 254:0 / / rw - ext4 /dev/vda rw\n"
                         f"99 27 0:53 / {str(spaced).replace(' ', chr(92) + '040')} rw - nfs4 srv:/export rw\n",
                         encoding="utf-8")
    code, got = in_process(["--config", write_config(tmp_path, spaced / "p.duckdb")], str(mountinfo))
    assert code == exitcodes.DATABASE and "nfs4 srv:/export" in got["database on a local disk"]


def test_no_mountinfo_says_it_cannot_tell(tmp_path):
    code, got = in_process(["--config", write_config(tmp_path, tmp_path / "x.duckdb")], str(tmp_path / "none"))
    assert code == exitcodes.OK
    assert got["database on a local disk"].startswith("skip ") and "cannot tell" in got["database on a local disk"]


def test_free_disk_space_threshold(tmp_path):
    free_mb = shutil.disk_usage(tmp_path).free / 1024 / 1024
    cfg = write_config(tmp_path, tmp_path / "x.duckdb")
    proc = doctor("--config", cfg, "--min-free-mb", str(int(free_mb * 10 + 1)))
    assert proc.returncode == exitcodes.DATABASE
    assert lines(proc.stdout)["free disk space"].startswith("FAIL ")
    proc = doctor("--config", cfg, "--min-free-mb", "1")
    assert proc.returncode == exitcodes.OK and lines(proc.stdout)["free disk space"].startswith("ok ")


def test_unreadable_scim_paths(tmp_path):
    scim = tmp_path / "scim"
    scim.mkdir()
    shutil.copy(SAMPLE, scim / "good.jsonl")
    gone = scim / "rotated.jsonl"
    gone.symlink_to(scim / "deleted-target.jsonl")  # named directly: opened, and there is nothing behind it
    eio = scim / "device.jsonl"
    eio.symlink_to("/proc/self/mem")  # opens, but the first read fails (EIO) for any user
    with pytest.raises(OSError):
        with open(eio, "rb") as fh:
            fh.read(1)
    paths = [str(scim / "good.jsonl"), str(gone), str(eio), str(tmp_path / "nowhere" / "*.jsonl")]
    proc = doctor("--config", write_config(tmp_path, tmp_path / "x.duckdb", paths))
    assert proc.returncode == exitcodes.USAGE
    line = lines(proc.stdout)["SCIM trail paths"]
    assert line.startswith("FAIL ")
    assert f"{tmp_path / 'nowhere' / '*.jsonl'} matches no file" in line
    assert f"{gone} matches no file" in line or f"{gone} cannot be read" in line
    assert f"{eio} cannot be read" in line
    assert "good.jsonl" not in line

    proc = doctor("--config", write_config(tmp_path, tmp_path / "x.duckdb", [str(scim / "good.jsonl")]))
    assert proc.returncode == exitcodes.OK and lines(proc.stdout)["SCIM trail paths"].startswith("ok ")


def test_bad_mapping_file(tmp_path):
    scim = tmp_path / "scim"
    scim.mkdir()
    shutil.copy(SAMPLE, scim / "a.jsonl")
    bad = tmp_path / "bad-mapping.toml"
    bad.write_text('[fields]\nwhen = "$.time"\n', encoding="utf-8")  # `when` is not one of our fields
    with pytest.raises(MappingError):
        load_mapping(str(bad))
    proc = doctor("--config", write_config(tmp_path, tmp_path / "x.duckdb", [str(scim / "a.jsonl")], str(bad)))
    assert proc.returncode == exitcodes.USAGE
    line = lines(proc.stdout)["mapping files"]
    assert line.startswith("FAIL ") and "'when'" in line and str(bad) in line

    good = ROOT / "examples" / "mappings" / "json-access-log.toml"
    proc = doctor("--config", write_config(tmp_path, tmp_path / "x.duckdb", [str(scim / "a.jsonl")], str(good)))
    assert proc.returncode == exitcodes.OK and lines(proc.stdout)["mapping files"].startswith("ok ")


def test_bad_config_stops_every_check_that_needs_it(tmp_path):
    cfg = tmp_path / "provlens.toml"
    cfg.write_text("db = \n", encoding="utf-8")
    proc = doctor("--config", str(cfg))
    assert proc.returncode == exitcodes.USAGE
    got = lines(proc.stdout)
    assert got["config"].startswith("FAIL ") and "not valid TOML" in got["config"]
    assert all(line.startswith("skip ") and "not run: needs " in line for t, line in got.items() if t != "config")
    for title in ("credential", "database writable", "SCIM trail paths", "mapping files", "alert targets"):
        assert got[title].endswith("not run: needs config")
    assert got["Graph reachable"].endswith("not run: needs credential")  # a chain: each names the one it waits on
    assert len(got) == 14


def test_secret_in_the_config_is_refused_without_printing_it(tmp_path):
    cfg = tmp_path / "provlens.toml"
    value = "toml-secret-9f8e7d"
    cfg.write_text(f'[[sources]]\ntype = "graph"\nclient_secret = "{value}"\n', encoding="utf-8")
    proc = doctor("--config", str(cfg))
    assert proc.returncode == exitcodes.USAGE
    assert value not in proc.stdout + proc.stderr
    assert "must not hold secrets" in lines(proc.stdout)["config"]


def test_doctor_help_marks_the_pull_only_options_ignored():
    proc = run_cli("ingest", "doctor", "--help")
    assert proc.returncode == 0
    for shown in ("--tenant-id", "--client-id", "--service-principal-id", "--cloud", "--send-test", "--format"):
        assert shown in proc.stdout
    help_text = " ".join(proc.stdout.split())  # argparse wraps lines
    for pull_only in ("--since", "--overlap", "--commit-every"):
        assert pull_only in help_text
    assert help_text.count("doctor ignores it") >= 3
