"""Secrets never leak: every ingest path runs with a known client secret and bearer token, and neither
appears in stdout/stderr (text and JSON logs), error output, the database (file bytes and every stored
text value), exports, or any file provlens leaves behind; no token cache is written to disk."""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
import pytest

from tests import reliability_harness as h

SECRET = f"cs~{uuid.uuid4().hex}-client-secret"
TOKEN = f"eyJ0eXAi.{uuid.uuid4().hex}.graph-token"
NEEDLES = (SECRET, TOKEN)
TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "66666666-7777-8888-9999-000000000000"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from simulator import generate
    from simulator.graph_server import FakeGraphServer, GraphData

    sim = generate(**h.SMALL_SIM)
    root = tmp_path_factory.mktemp("secrets")
    home = root / "home"
    home.mkdir()
    with FakeGraphServer(GraphData.from_simulation(sim), token=TOKEN) as server:
        yield {"sim": sim, "server": server, "root": root, "home": home, "started": time.time(),
               "sps": sorted({e["servicePrincipal"]["id"] for e in sim.events})}


def _env(world, **extra) -> dict:
    base = {"HOME": str(world["home"]), "AZURE_CLIENT_SECRET": SECRET, "PROVLENS_CLIENT_SECRET": SECRET,
            "PROVLENS_TENANT_ID": TENANT, "PROVLENS_CLIENT_ID": CLIENT}
    return h.cli_env(**(base | extra))


def _clean(text: str, where: str) -> None:
    for needle in NEEDLES:
        assert needle not in text, f"a secret appears in {where}"
        assert needle[8:30] not in text, f"part of a secret appears in {where}"


def _clean_db(db: Path) -> None:
    for p in (db, Path(str(db) + ".wal")):
        if p.exists():
            data = p.read_bytes()
            for needle in NEEDLES:
                assert needle.encode() not in data, f"a secret is in the bytes of {p.name}"
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'main' AND table_type = 'BASE TABLE'").fetchall()]
        for table in tables:  # compressed columns would hide a string from the byte search
            for needle in NEEDLES:
                hits = con.execute(f'SELECT count(*) FROM "{table}" t WHERE contains(t::VARCHAR, ?)',
                                   [needle]).fetchone()[0]
                assert hits == 0, f"a secret is stored in table {table}"
    finally:
        con.close()


def _graph_args(world, db: Path, *extra: str) -> list[str]:
    return h.graph_argv(str(db), world["server"].base_url, world["sps"], extra=extra)


def _run_all(world) -> dict:
    """Every ingest path once (memoised): returns outputs, databases and export files to search."""
    if "runs" in world:
        return world["runs"]
    root, outputs, dbs = world["root"], {}, []
    entra_log = root / "entra.log"
    # 1. graph with a client secret through azure-identity (token endpoint answered in-process)
    db = root / "graph-secret.duckdb"
    argv = ["-m", "tests.reliability_harness", "fake-entra", *_graph_args(world, db, "--auth", "secret")[3:]]
    fake_entra = {"PROVLENS_TEST_ISSUED_TOKEN": TOKEN, "PROVLENS_TEST_EXPECTED_SECRET": SECRET,
                  "PROVLENS_TEST_ENTRA_LOG": str(entra_log)}
    proc = h.run([h.python(), *argv], _env(world, **fake_entra))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "secret ok" in entra_log.read_text() and "WRONG" not in entra_log.read_text()
    assert h.event_ids(db), "the client-secret pull loaded nothing"
    outputs["graph secret"] = proc.stdout + proc.stderr
    dbs.append(db)
    # 2. a wrong secret: the error output is checked too
    bad = h.run([h.python(), *argv], _env(world, PROVLENS_CLIENT_SECRET=SECRET[::-1], AZURE_CLIENT_SECRET="",
                                          PROVLENS_TEST_ISSUED_TOKEN=TOKEN, PROVLENS_TEST_EXPECTED_SECRET=SECRET,
                                          PROVLENS_TEST_ENTRA_LOG=str(entra_log)))
    assert bad.returncode == 4, bad.stderr[-2000:]
    outputs["graph wrong secret"] = bad.stdout + bad.stderr.replace(SECRET[::-1], "")
    # 3. graph with PROVLENS_GRAPH_TOKEN, text log, then failures (403, expired token) with their messages
    db = root / "graph-token.duckdb"
    proc = h.run([a for a in _graph_args(world, db) if a not in ("--log-format", "json")],
                 _env(world, PROVLENS_GRAPH_TOKEN=TOKEN))
    assert proc.returncode == 0, proc.stderr[-2000:]
    outputs["graph token"] = proc.stdout + proc.stderr
    for fault in ("1:403:repeat=100", "1:expire"):
        world["server"].set_faults([fault])
        failed = h.run(_graph_args(world, db, "--max-wait", "2"), _env(world, PROVLENS_GRAPH_TOKEN=TOKEN))
        assert failed.returncode == 4
        outputs[f"graph {fault}"] = failed.stdout + failed.stderr
    world["server"].set_faults([])
    dbs.append(db)
    # 4. scim: audit lines carrying the token and secret in headers and fields
    trail = root / "audit.jsonl"
    lines = []
    for i, rec in enumerate(world["sim"].scim_records[:50]):
        rec = dict(rec, authorization=f"Bearer {TOKEN}", credential_id=f"Bearer {TOKEN}",
                   headers={"Authorization": f"Bearer {TOKEN}", "X-Client-Secret": SECRET}, client_secret=SECRET)
        if i % 10 == 0:  # rejected lines keep an excerpt of the line: secrets first, so they are in it
            rec = {"authorization": f"Bearer {TOKEN}", "password": SECRET,
                   **{k: v for k, v in rec.items() if k != "method"}}  # no method: rejected (no id: keyed)
        lines.append(json.dumps(rec))
    trail.write_text("\n".join(lines) + "\n", encoding="utf-8")
    db = root / "scim.duckdb"
    proc = h.run(h.scim_argv(str(db), [str(trail)]), _env(world, PROVLENS_GRAPH_TOKEN=TOKEN))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(h.scim_request_ids(db)) == 45
    outputs["scim"] = proc.stdout + proc.stderr
    dbs.append(db)
    # 5. files and 6. run (graph + files + scim sources from provlens.toml, JSON log)
    events = root / "events.ndjson"
    events.write_text("".join(json.dumps(e) + "\n" for e in world["sim"].events), encoding="utf-8")
    db = root / "files.duckdb"
    proc = h.run([h.python(), "-m", "ingest", "files", "--db", str(db), "-q", str(events)],
                 _env(world, PROVLENS_GRAPH_TOKEN=TOKEN))
    assert proc.returncode == 0, proc.stderr[-2000:]
    outputs["files"] = proc.stdout + proc.stderr
    dbs.append(db)
    db = root / "run.duckdb"
    config = root / "provlens.toml"
    config.write_text(
        f'db = "{db}"\n[[sources]]\ntype = "graph"\ngraph_url = "{world["server"].base_url}"\nrate = "off"\n'
        f'service_principal_ids = {json.dumps(world["sps"])}\nsince = "{h.GRAPH_SINCE}"\nuntil = "{h.GRAPH_UNTIL}"\n'
        f'[[sources]]\ntype = "files"\npaths = ["{events}"]\n[[sources]]\ntype = "scim"\npaths = ["{trail}"]\n',
        encoding="utf-8")
    proc = h.run([h.python(), "-m", "ingest", "run", "--config", str(config), "-q", "--log-format", "json"],
                 _env(world, PROVLENS_GRAPH_TOKEN=TOKEN))
    assert proc.returncode == 0, proc.stderr[-2000:]
    outputs["run"] = proc.stdout + proc.stderr
    dbs.append(db)
    # a secret written into provlens.toml is refused without being echoed
    bad_config = root / "bad.toml"
    bad_config.write_text(f'[graph]\nclient_secret = "{SECRET}"\n', encoding="utf-8")
    proc = h.run([h.python(), "-m", "ingest", "graph", "--config", str(bad_config), "--db", str(root / "x.duckdb")],
                 _env(world))
    assert proc.returncode == 2 and "must not hold secrets" in proc.stderr
    outputs["config with a secret"] = proc.stdout + proc.stderr
    # exports of everything that holds data
    exports = []
    for dataset, fmt in (("events", "csv"), ("events", "parquet"), ("scim-requests", "csv"),
                         ("scim-rejects", "csv"), ("ingest-runs", "csv"), ("ingest-rejects", "csv")):
        out = root / f"export-{dataset}.{fmt}"
        proc = h.run([h.python(), "-m", "queries", "export", dataset, "--db", str(db), "--out", str(out),
                      "--format", fmt], _env(world))
        assert proc.returncode == 0, proc.stderr[-2000:]
        exports += [p for p in root.glob(f"export-{dataset}.{fmt}*")]
        outputs[f"export {dataset}"] = proc.stdout + proc.stderr
    world["runs"] = {"outputs": outputs, "dbs": dbs, "exports": exports}
    return world["runs"]


def test_logs_and_error_output_hold_no_secret(world):
    for where, text in _run_all(world)["outputs"].items():
        _clean(text, where)


def test_databases_hold_no_secret(world):
    for db in _run_all(world)["dbs"]:
        _clean_db(db)


def test_exports_hold_no_secret(world):
    exports = _run_all(world)["exports"]
    assert len(exports) >= 6
    for path in exports:
        data = path.read_bytes()
        for needle in NEEDLES:
            assert needle.encode() not in data, f"a secret is in {path.name}"


def test_no_token_cache_or_stray_file_on_disk(world):
    _run_all(world)
    assert sorted(p.relative_to(world["home"]) for p in world["home"].rglob("*")) == [], \
        "provlens wrote under $HOME (a token cache?)"
    since = world["started"] - 1
    for top in (Path(tempfile.gettempdir()), h.ROOT):
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if d not in (".git", ".venv", "node_modules", "__pycache__")]
            for name in filenames:
                path = Path(dirpath) / name
                try:
                    if path.stat().st_mtime < since or path.stat().st_size > 50_000_000:
                        continue
                    data = path.read_bytes()
                except OSError:
                    continue
                if path.is_relative_to(world["root"]) and path.suffix in (".jsonl", ".toml", ".log"):
                    continue  # the test's own inputs (they carry the secrets on purpose)
                for needle in NEEDLES:
                    assert needle.encode() not in data, f"a secret was written to {path}"
