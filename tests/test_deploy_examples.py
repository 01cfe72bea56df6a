"""The container and scheduler examples (Dockerfile, compose.yaml, deploy/) hold only real commands (issue 25).

Every command they run is parsed by the real `provlens` parsers and answers `--help`; the systemd units pass
`systemd-analyze verify`; the Dockerfile's HEALTHCHECK command runs against a live dashboard; the Azure Container
Apps job's script runs here twice against folders standing in for its volumes. The image itself is not built here
(no base-image registry), nor are the manifests applied to a cluster.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import duckdb
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HEALTH = "/_stcore/health"


def _provlens_help(args: list[str]) -> None:
    """`provlens ARGS --help` answers: the subcommand exists."""
    proc = subprocess.run([sys.executable, "-m", "provlens", *args, "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage:"), (args, proc.stderr)


def check_command(args: list[str]) -> None:
    """ARGS (what follows `provlens`) is a real command line: the real parsers accept all of it."""
    _provlens_help(args[:2] if args[0] == "ingest" else args[:1])
    if args[0] == "ingest":
        from ingest.cli import build_parser
        from ingest.timespec import parse_duration

        parsed = build_parser().parse_args(args[1:])  # exits 2 on anything it does not know
        if getattr(parsed, "every", None):
            assert parse_duration(parsed.every).total_seconds() >= 60
    elif args[0] == "dashboard":
        from provlens.launch import build_parser

        parsed, extra = build_parser().parse_known_args(args[1:])
        assert extra == [], f"dashboard would pass {extra} to streamlit"
    else:
        raise AssertionError(f"unexpected command {args}")


def _dockerfile() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- Dockerfile
def test_dockerfile_slim_non_root_volume_and_real_commands():
    steps = _dockerfile()
    assert [arg for word, arg in steps if word == "FROM"] == ["python:3.11-slim"]
    users = [arg for word, arg in steps if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    env = " ".join(arg for word, arg in steps if word == "ENV")
    db = re.search(r"PROVLENS_DB=(\S+)", env).group(1)
    (volume,) = [json.loads(arg) for word, arg in steps if word == "VOLUME"]
    assert volume == [str(Path(db).parent)]
    assert json.loads(next(arg for word, arg in steps if word == "ENTRYPOINT")) == ["provlens"]
    check_command(json.loads(next(arg for word, arg in steps if word == "CMD")))
    # each RUN step is a command this suite runs: the setup script, the wheel build and install of
    # tests/test_package_install.py, pip from the lock, creating the user and the data folder
    allowed = ("useradd --system", "install -d", "scripts/setup.sh", "rm -rf /root/.cache/pip", "rm -rf /tmp/",
               ".venv/bin/python -m pip install -q --no-cache-dir -c constraints.txt setuptools build",
               ".venv/bin/python -m build --wheel --no-isolation",
               ".venv/bin/python -m pip install -q --no-cache-dir --no-deps --no-index /tmp/dist/provlens-")
    for word, arg in steps:
        if word == "RUN":
            for part in arg.split("&&"):
                assert part.strip().startswith(allowed), part
        if word == "COPY" and not arg.startswith(". "):
            for src in arg.split()[:-1]:
                assert (ROOT / src).exists(), src
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".streamlit/secrets.toml" in ignored and ".venv" in ignored and "*.duckdb" in ignored
    uid = re.search(r"useradd [^&]*--uid (\d+)", next(a for w, a in steps if w == "RUN" and "useradd" in a)).group(1)
    for doc in yaml.safe_load_all((ROOT / "deploy/kubernetes/provlens.yaml").read_text()):
        if doc["kind"] in ("CronJob", "Deployment"):
            spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
            pod = spec["template"]
            assert str(pod["spec"]["securityContext"]["runAsUser"]) == uid  # the image's user


def test_dockerfile_healthcheck_answers_for_a_live_dashboard(tmp_path):
    """The HEALTHCHECK's own command (its `python` is the image's venv python) against `provlens dashboard`."""
    (health,) = [arg for word, arg in _dockerfile() if word == "HEALTHCHECK"]
    cmd = json.loads(health.split(" CMD ", 1)[1])
    assert cmd[0] == "python" and HEALTH in " ".join(cmd)
    port = _free_port()
    env = {**os.environ, "PROVLENS_PORT": str(port), "PROVLENS_READ_KEEP_S": "0"}
    env.pop("PROVLENS_DB", None)

    def probe() -> int:
        return subprocess.run([sys.executable, *cmd[1:]], env=env, capture_output=True, timeout=30).returncode

    assert probe() != 0  # nothing listens yet
    log = tmp_path / "dashboard.log"
    with open(log, "wb") as out:  # the dashboard reads PROVLENS_PORT as the image sets it
        proc = subprocess.Popen([sys.executable, "-m", "provlens", "dashboard", "--db", str(tmp_path / "x.duckdb")],
                                cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while probe() != 0:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{HEALTH}", timeout=5) as resp:
            assert resp.read() == b"ok"
        assert (tmp_path / "x.duckdb").exists()  # not --read-only: the demo was built first, as dashboard.sh does
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    assert probe() != 0


# ---- compose.yaml
def test_compose_one_writer_one_reader_sharing_a_volume():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"ingest", "dashboard"}
    assert services["ingest"]["image"] == services["dashboard"]["image"]
    ingest_cmd, dash_cmd = services["ingest"]["command"], services["dashboard"]["command"]
    assert ingest_cmd[:2] == ["ingest", "run"] and "--every" in ingest_cmd
    assert dash_cmd[0] == "dashboard" and "--read-only" in dash_cmd
    for cmd in (ingest_cmd, dash_cmd):
        check_command(cmd)
    (data,) = compose["volumes"]
    writers = []
    for name, service in services.items():
        mounts = [v.split(":") for v in service["volumes"] if v.startswith(f"{data}:")]
        assert len(mounts) == 1, name
        if mounts[0][-1] != "ro":
            writers.append(name)
    assert writers == ["ingest"]
    assert all(p.startswith("127.0.0.1:") for p in services["dashboard"]["ports"])
    config = services["ingest"]["environment"]["PROVLENS_CONFIG"]
    assert any(v.endswith(f":{config}:ro") for v in services["ingest"]["volumes"])


def test_example_config_names_real_sources():
    from ingest.run import configured_sources

    config = tomllib.loads((ROOT / "deploy/provlens.example.toml").read_text())
    assert [s["type"] for s in configured_sources(config)] == ["graph"]
    assert not re.search(r"secret|password|token", json.dumps(config), re.I)


# ---- Kubernetes
def test_kubernetes_cronjob_and_deployment_share_a_read_write_once_volume():
    docs = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "deploy/kubernetes/provlens.yaml").read_text())}
    assert set(docs) == {"PersistentVolumeClaim", "CronJob", "Deployment", "Service"}
    pvc = docs["PersistentVolumeClaim"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    cron = docs["CronJob"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job_pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    dash_pod = docs["Deployment"]["spec"]["template"]["spec"]
    for pod, writes in ((job_pod, True), (dash_pod, False)):
        (container,) = pod["containers"]
        check_command(container["args"])
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
                  if "persistentVolumeClaim" in v}
        (mount,) = [m for m in container["volumeMounts"] if m["name"] in claims]
        assert claims[mount["name"]] == pvc["metadata"]["name"]
        assert bool(mount.get("readOnly")) is not writes
        assert mount["mountPath"] == "/var/lib/provlens"  # the image's VOLUME and PROVLENS_DB folder
    (dash,) = dash_pod["containers"]
    assert dash["args"] == ["dashboard", "--read-only"]
    ports = {p["name"]: p["containerPort"] for p in dash["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = dash[probe]["httpGet"]
        assert get["path"] == HEALTH and ports[get["port"]] == 8501
    # ReadWriteOnce: the job's pods go to the dashboard's node
    (term,) = job_pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["labelSelector"]["matchLabels"] == docs["Deployment"]["spec"]["selector"]["matchLabels"]
    assert term["topologyKey"] == "kubernetes.io/hostname"


# ---- systemd
def _exec_args(unit: Path) -> list[str]:
    (line,) = [ln for ln in unit.read_text().splitlines() if ln.startswith("ExecStart=")]
    argv = shlex.split(line.removeprefix("ExecStart="))
    assert Path(argv[0]).name == "provlens"
    return argv


def test_systemd_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: scripts/setup.sh dev installs Debian's systemd package"
    units = sorted((ROOT / "deploy/systemd").glob("provlens-*"))
    assert {u.name for u in units} == {"provlens-ingest.service", "provlens-ingest.timer",
                                       "provlens-dashboard.service"}
    # a root folder with the host's own units and the ExecStart program where the units expect it
    shutil.copytree("/usr/lib/systemd/system", tmp_path / "usr/lib/systemd/system", symlinks=True)
    unit_dir = tmp_path / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    for unit in units:
        shutil.copy(unit, unit_dir / unit.name)
        if unit.suffix == ".service":
            argv = _exec_args(unit)
            check_command(argv[1:])
            program = tmp_path / argv[0].lstrip("/")
            program.parent.mkdir(parents=True, exist_ok=True)
            program.write_text("#!/bin/sh\n")
            program.chmod(program.stat().st_mode | stat.S_IXUSR)
    proc = subprocess.run([analyze, "verify", f"--root={tmp_path}", *(f"etc/systemd/system/{u.name}" for u in units)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    assert _exec_args(ROOT / "deploy/systemd/provlens-dashboard.service")[1:] == ["dashboard", "--read-only"]


def test_systemd_verify_catches_a_broken_unit(tmp_path):
    """The check above can fail: a timer with a bad calendar is refused."""
    shutil.copytree("/usr/lib/systemd/system", tmp_path / "usr/lib/systemd/system", symlinks=True)
    unit_dir = tmp_path / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    text = (ROOT / "deploy/systemd/provlens-ingest.timer").read_text()
    (unit_dir / "provlens-ingest.timer").write_text(text.replace("OnUnitInactiveSec=40min", "OnCalendar=bogus"))
    shutil.copy(ROOT / "deploy/systemd/provlens-ingest.service", unit_dir)
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={tmp_path}",
                           "etc/systemd/system/provlens-ingest.timer"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 or proc.stderr.strip()


# ---- Azure Container Apps job
def _aca_job() -> dict:
    return yaml.safe_load((ROOT / "deploy/azure/containerapps-job.yaml").read_text())


def test_container_apps_job_never_opens_the_store_on_azure_files():
    job = _aca_job()
    text = (ROOT / "deploy/azure/containerapps-job.yaml").read_text()
    assert "Azure Files" in text and "not reliable" in text
    cfg = job["properties"]["configuration"]
    assert cfg["triggerType"] == "Schedule" and cfg["scheduleTriggerConfig"]["parallelism"] == 1
    assert cfg["replicaTimeout"] < 40 * 60  # ends before the next execution of "*/40 * * * *"
    template = job["properties"]["template"]
    (container,) = template["containers"]
    volumes = {v["name"]: v["storageType"] for v in template["volumes"]}
    mounts = {m["mountPath"]: volumes[m["volumeName"]] for m in container["volumeMounts"]}
    script = container["args"][0]
    work = re.search(r"work=\$\{PROVLENS_WORK:-(\S+)\}", script).group(1)
    share = re.search(r"share=\$\{PROVLENS_SHARE:-(\S+)\}", script).group(1)
    assert mounts[work] == "EmptyDir" and mounts[share] == "AzureFile"
    assert 'PROVLENS_DB="$work/' in script
    for line in script.splitlines():
        words = shlex.split(line.strip())
        if words and words[0] == "provlens":
            command = words[1:words.index("||")] if "||" in words else words[1:]
            check_command(command)
            assert "$share" not in " ".join(command)  # DuckDB never opens a file on the share


@pytest.mark.timeout(300)
def test_container_apps_job_script_runs_and_publishes_the_store(tmp_path):
    """Two executions of the job's own script, with folders for its volumes and a files source."""
    sim = tmp_path / "sim"
    subprocess.run([sys.executable, "-m", "simulator", "--out", str(sim), "--users", "30", "--days", "2"], cwd=ROOT,
                   check=True, capture_output=True, timeout=120)
    truth_ids = {json.loads(line)["id"] for line in (sim / "events.ndjson").read_text().splitlines() if line.strip()}
    share, bin_dir = tmp_path / "share", tmp_path / "bin"
    share.mkdir()
    bin_dir.mkdir()
    (share / "provlens.toml").write_text(f'[[sources]]\ntype = "files"\npaths = ["{sim}/graph/*.json"]\n')
    shim = bin_dir / "provlens"  # the image's console script, here from the clone
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m provlens "$@"\n')
    shim.chmod(0o755)
    script = _aca_job()["properties"]["template"]["containers"][0]["args"][0]
    for run in (1, 2):
        work = tmp_path / f"work{run}"  # a new replica's EmptyDir each execution
        work.mkdir()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("PROVLENS_")},
               "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
               "PROVLENS_SHARE": str(share), "PROVLENS_WORK": str(work),
               "PROVLENS_CONFIG": str(share / "provlens.toml")}
        proc = subprocess.run(["/bin/sh", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=240)
        assert proc.returncode == 0, proc.stderr
        assert sorted(p.name for p in share.iterdir()) == ["provlens.duckdb", "provlens.toml"]
        with duckdb.connect(str(share / "provlens.duckdb"), read_only=True) as con:
            ids = {r[0] for r in con.execute("SELECT id FROM events").fetchall()}
            runs = con.execute("SELECT count(*) FROM ingest_runs").fetchone()[0]
        assert ids == truth_ids
        assert runs == run  # the second execution started from the published store
