"""The Azure Storage blob source (`python -m ingest blobs`) against Azurite, the real storage emulator, and real
DuckDB files: appends load only their new lines, a partial last line waits for its end, a shrunk or replaced blob is
read again from the start, a record in two blobs is one event, both path forms are read, SAS and connection-string
sign-in give the same rows, a failing sign-in names no secret, and a run killed mid-load is finished by the next
without duplicates.

The blob lines are diagnostic-settings records as Azure Monitor writes them (envelope per Microsoft's documented
fields, ``properties`` a Graph-shaped event from the simulator). The reference is the same events loaded from their
Graph form with ``ingest files``: the typed columns must be equal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from datetime import datetime, timezone

import duckdb
import pytest

from ingest import exitcodes
from ingest.blobs.ingest import BlobSettings, ingest_blobs
from ingest.file_ingest import ingest_files
from ingest.schema import EVENT_COLUMNS
from tests.azurite import KEY, running_azurite
from tests.conftest import PY, ROOT

TENANT = "ae85b314-50bb-4d8b-abfb-7ed35d7e3bbd"
TYPED = [c for c, _ in EVENT_COLUMNS if c not in ("raw", "first_ingested_at", "last_ingested_at", "ingest_run_id")]


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    with running_azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(scope="module")
def events():
    from simulator import generate

    sim = generate(seed=5, users=25, days=2, end=datetime(2026, 11, 1, tzinfo=timezone.utc))
    return sorted(sim.events, key=lambda e: (e["activityDateTime"], e["id"]))


@pytest.fixture
def container(azurite):
    """A new container per test (names must be 3-63 lower-case letters, digits and dashes)."""
    client = azurite.service().create_container(f"t{uuid.uuid4().hex[:20]}")
    yield client
    client.delete_container()


@pytest.fixture
def conn_env(azurite, monkeypatch):
    monkeypatch.setenv("PROVLENS_BLOB_CONNECTION_STRING", azurite.connection_string())
    monkeypatch.delenv("PROVLENS_BLOB_SAS_URL", raising=False)


def envelope(event: dict) -> dict:
    """A diagnostic-settings record around a Graph event (the envelope's fields: Microsoft's resource-log schema,
    /work/shared/reference/azure-monitor-alerts-preflight.md)."""
    status = event["provisioningStatusInfo"]["status"]
    return {"time": event["activityDateTime"], "resourceId": f"/tenants/{TENANT}/providers/Microsoft.aadiam",
            "operationName": "Provisioning activity", "operationVersion": "1.0", "category": "ProvisioningLogs",
            "tenantId": TENANT, "resultType": status.capitalize(), "resultSignature": "None",
            "resultDescription": "", "durationMs": event.get("durationInMilliseconds", 0),
            "correlationId": event["changeId"], "identity": "", "Level": 4, "properties": event}


def lines(evts: list[dict]) -> bytes:
    return b"".join(json.dumps(envelope(e)).encode() + b"\r\n" for e in evts)  # JSON Lines with CRLF, as Azure writes


def hour_blob(hour: int, day: int = 31, *, form: str = "tenantId") -> str:
    head = f"tenantId={TENANT}" if form == "tenantId" else f"resourceId=/tenants/{TENANT}/providers/microsoft.aadiam"
    return f"{head}/y=2026/m=10/d={day:02d}/h={hour:02d}/m=00/PT1H.json"


def append_blob(container, name: str, *blocks: bytes):
    blob = container.get_blob_client(name)
    blob.create_append_blob()
    for block in blocks:
        blob.append_block(block)
    return blob


def load(db, container, **kw):
    return ingest_blobs(str(db), BlobSettings(container=container.container_name, retries=0, quiet=True, **kw))


def typed_rows(db, ids=None) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(f"SELECT {', '.join(TYPED)} FROM events ORDER BY id").fetchall()
    return [r for r in rows if ids is None or r[0] in ids]


def event_ids(db) -> list[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        return [r[0] for r in con.execute("SELECT id FROM events").fetchall()]


def query(db, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def reference(events, tmp_path_factory):
    """Every event loaded from its Graph form (NDJSON) by `ingest files`: the typed rows a blob load must equal."""
    root = tmp_path_factory.mktemp("reference")
    path = root / "graph.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    outcome = ingest_files(str(root / "ref.duckdb"), [str(path)], quiet=True)
    assert outcome.exit_code == exitcodes.OK and outcome.loaded.new == len(events)
    return root / "ref.duckdb"


def test_appends_load_only_their_new_lines_and_a_partial_line_waits(container, conn_env, events, reference, tmp_path):
    db = tmp_path / "blobs.duckdb"
    name = hour_blob(0)
    first, second, third = events[:30], events[30:50], events[50:60]
    blob = append_blob(container, name, lines(first))
    run1 = load(db, container)
    assert run1.exit_code == exitcodes.OK and run1.loaded.new == 30 and run1.lines == 30

    # Two more blocks, the second cut in the middle of a record: only the complete lines load.
    tail = lines(third)
    cut = len(lines(third[:4])) + 50  # 4 whole records and 50 bytes of the fifth
    blob.append_block(lines(second))
    blob.append_block(tail[:cut])
    run2 = load(db, container)
    assert (run2.lines, run2.loaded.new, run2.loaded.unchanged) == (24, 24, 0)  # nothing read twice
    assert run2.bytes == len(lines(second)) + len(lines(third[:4]))
    assert run2.held_back == 1
    assert len(event_ids(db)) == 54

    # Nothing new: nothing is downloaded or loaded; the partial line is still waiting.
    run3 = load(db, container)
    assert (run3.read, run3.unchanged, run3.lines, run3.held_back) == (0, 1, 0, 1)

    # The rest of the record arrives: it loads, whole, and the blob is read to its end.
    blob.append_block(tail[cut:])
    run4 = load(db, container)
    assert (run4.lines, run4.loaded.new, run4.held_back) == (6, 6, 0)
    loaded = set(event_ids(db))
    assert loaded == {e["id"] for e in events[:60]} and len(event_ids(db)) == 60
    assert typed_rows(db) == typed_rows(reference, loaded)  # the same typed columns as the Graph form
    assert query(db, "SELECT count(*) FROM ingest_rejects") == [(0,)]
    size = blob.get_blob_properties().size
    assert query(db, "SELECT byte_offset, size, line_count FROM blob_state") == [(size, size, 60)]
    runs = query(db, "SELECT outcome, records_read, records_new FROM ingest_runs ORDER BY run_id")
    assert runs == [("success", 30, 30), ("success", 24, 24), ("success", 0, 0), ("success", 6, 6)]


def test_a_shrunk_blob_and_a_replaced_blob_are_read_again_from_the_start(container, conn_env, events, tmp_path):
    db = tmp_path / "blobs.duckdb"
    shrunk, replaced = hour_blob(1), hour_blob(2)
    append_blob(container, shrunk, lines(events[:40]))
    append_blob(container, replaced, lines(events[40:50]))
    assert load(db, container).loaded.new == 50

    # Deleted and written again, smaller: 10 records already loaded and 5 new ones.
    container.get_blob_client(shrunk).delete_blob()
    append_blob(container, shrunk, lines(events[:10] + events[100:105]))
    # Overwritten at once (same creation second is possible) by a longer blob with other records first.
    container.get_blob_client(replaced).upload_blob(lines(events[110:125]), overwrite=True)
    run = load(db, container)
    reasons = dict(r.split(": ", 1) for r in run.restarted)
    assert set(reasons) == {shrunk, replaced}
    assert "shrank" in reasons[shrunk] or "created again" in reasons[shrunk]
    assert reasons[replaced] in ("created again", "its bytes before the stored offset changed (replaced)")
    assert (run.loaded.new, run.loaded.unchanged) == (20, 10)
    ids = event_ids(db)
    assert len(ids) == len(set(ids)) == 70
    assert set(ids) == {e["id"] for e in events[:50] + events[100:105] + events[110:125]}
    sizes = {b.name: b.size for b in container.list_blobs()}
    assert dict(query(db, "SELECT blob, byte_offset FROM blob_state")) == sizes


def test_the_same_record_in_two_blobs_is_one_event_and_both_path_forms_are_read(container, conn_env, events,
                                                                                  reference, tmp_path):
    db = tmp_path / "blobs.duckdb"
    twice = events[5]
    append_blob(container, hour_blob(3), lines(events[:10]))
    append_blob(container, hour_blob(4, form="resourceId"), lines([twice] + events[10:20]))
    container.upload_blob("notes/readme.txt", b"not a log")  # listed, not read
    run = load(db, container)
    assert run.listed == 2 and run.others == ["notes/readme.txt"]
    assert run.lines == 21 and run.loaded.read == 21
    ids = event_ids(db)
    assert len(ids) == len(set(ids)) == 20  # delivered twice, stored once
    assert typed_rows(db) == typed_rows(reference, set(ids))

    # A later hour re-sends it again, with a Graph load of the same events in between: still one row each.
    ingest_files(str(db), [str(_graph_file(tmp_path, events[:20]))], quiet=True)
    append_blob(container, hour_blob(5), lines([twice, events[0]]))
    again = load(db, container)
    # Not new. (Counted "updated" when the raw text differs from the Graph file's: the store compares raw JSON text.)
    assert (again.loaded.read, again.loaded.new) == (2, 0)
    assert len(event_ids(db)) == 20
    assert typed_rows(db) == typed_rows(reference, set(ids))


def _graph_file(tmp_path, evts):
    path = tmp_path / "graph.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in evts), encoding="utf-8")
    return path


def test_a_bad_line_is_rejected_with_its_blob_and_line_and_the_rest_loads(container, conn_env, events, tmp_path):
    db = tmp_path / "blobs.duckdb"
    name = hour_blob(6)
    blob = append_blob(container, name, lines(events[:3]))
    assert load(db, container).loaded.new == 3
    bad = b'{"time": "2026-10-31T06:00:00Z", "category": "ProvisioningLogs", "properties": {"id": \r\n'
    blob.append_block(lines(events[3:5]) + bad + lines(events[5:7]))
    run = load(db, container)
    assert run.exit_code == exitcodes.OK and run.loaded.new == 4 and run.rejected == 1
    where = query(db, "SELECT file, position FROM ingest_rejects")
    # The blob's 6th line: 3 records from the first run, 2 good ones, then the broken one.
    assert where == [(f"{run.container_url}/{name}", "line 6")]
    assert run.container_url == f"{container.url}"


def _cli(argv: list[str], env: dict[str, str], monkeypatch, capsys) -> tuple[int, str]:
    """``python -m ingest ...`` in this process (its main(), exit code and output) with only ``env``'s PROVLENS_*
    variables set."""
    from ingest.cli import main

    for name in [k for k in os.environ if k.startswith("PROVLENS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_sas_and_connection_string_sign_in_load_the_same_rows(azurite, container, events, tmp_path, monkeypatch,
                                                              capsys):
    append_blob(container, hour_blob(7), lines(events[:25]))
    append_blob(container, hour_blob(8, form="resourceId"), lines(events[25:40]))
    by_sas = tmp_path / "sas.duckdb"
    code, output = _cli(["blobs", "--db", str(by_sas), "-q"],
                        {"PROVLENS_BLOB_SAS_URL": azurite.container_sas_url(container.container_name)},
                        monkeypatch, capsys)
    assert code == exitcodes.OK, output
    assert "SAS URL" in output and "sig=" not in output
    by_account_sas = tmp_path / "account-sas.duckdb"  # an account SAS: the container by name
    code, output = _cli(["blobs", "--db", str(by_account_sas), "-q", "--container", container.container_name],
                        {"PROVLENS_BLOB_SAS_URL": azurite.account_sas_url()}, monkeypatch, capsys)
    assert code == exitcodes.OK, output
    assert typed_rows(by_account_sas) == typed_rows(by_sas)

    # The scheduled form: [[sources]] type = "blobs" in provlens.toml, the secret from the environment.
    by_conn = tmp_path / "conn.duckdb"
    toml = tmp_path / "provlens.toml"
    toml.write_text(f'db = "{by_conn}"\n[[sources]]\ntype = "blobs"\ncontainer = "{container.container_name}"\n'
                    'retries = 0\n', encoding="utf-8")
    code, output = _cli(["run", "--config", str(toml)],
                        {"PROVLENS_BLOB_CONNECTION_STRING": azurite.connection_string()}, monkeypatch, capsys)
    assert code == exitcodes.OK, output
    assert len(event_ids(by_sas)) == 40
    assert typed_rows(by_sas) == typed_rows(by_conn)


def test_a_failing_sign_in_or_connection_names_no_secret(azurite, container, events, tmp_path, monkeypatch, capsys):
    append_blob(container, hour_blob(9), lines(events[:5]))
    db = tmp_path / "blobs.duckdb"
    wrong_key = KEY[:-6] + "AAAAA="  # a key of the right form that is not the account's
    base = ["blobs", "--db", str(db), "--container", container.container_name, "--retries", "0"]
    sas = azurite.container_sas_url(container.container_name)
    forged = sas.replace("sig=", "sig=AAAA")
    toml = tmp_path / "provlens.toml"
    toml.write_text(f'[blobs]\nconnection_string = "{azurite.connection_string()}"\n', encoding="utf-8")
    tries = {  # what is set -> (exit code, what the message must say)
        "wrong key": ({"PROVLENS_BLOB_CONNECTION_STRING": azurite.connection_string(wrong_key)}, [],
                      exitcodes.AUTH, "authentication or authorisation failed"),
        "forged SAS": ({"PROVLENS_BLOB_SAS_URL": forged}, [], exitcodes.AUTH, "authentication or authorisation failed"),
        "nothing listening": ({"PROVLENS_BLOB_CONNECTION_STRING": azurite.connection_string().replace(
            azurite.url, "http://127.0.0.1:9")}, [], exitcodes.UNREACHABLE, "storage unreachable"),  # 9: discard
        "secret in provlens.toml": ({}, ["--config", str(toml)], exitcodes.USAGE, "in the environment"),
    }
    outputs = []
    for what, (env, extra, want, says) in tries.items():
        code, output = _cli(base + extra, env, monkeypatch, capsys)
        assert code == want and says in output, (what, code, output)
        outputs.append(output)

    secrets = [KEY, wrong_key, forged.split("sig=", 1)[1].split("&")[0], sas.split("sig=", 1)[1].split("&")[0]]
    stored = "\n".join(str(r) for t in ("ingest_runs", "ingest_rejects", "blob_state")
                       for r in query(db, f"SELECT * FROM {t}"))
    assert query(db, "SELECT count(*) FROM ingest_runs WHERE outcome = 'failed'")[0][0] == 3
    for secret in secrets:
        assert not any(secret in output for output in outputs)
        assert secret not in stored


def test_a_run_killed_mid_load_is_finished_by_the_next_without_duplicates(azurite, container, events, tmp_path):
    """SIGKILL after some committed batches (many blobs, small batches): each blob's read position never runs ahead
    of the events stored, and the re-run stores exactly the records written, once each."""
    written = []
    for hour in range(16):
        chunk = [events[(hour * 7 + i) % len(events)] for i in range(10)]  # overlapping: at-least-once delivery
        append_blob(container, hour_blob(hour, day=30), lines(chunk))
        written.append(chunk)
    want = {e["id"] for chunk in written for e in chunk}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVLENS_")}
    env["PROVLENS_BLOB_CONNECTION_STRING"] = azurite.connection_string()
    db = tmp_path / "killed.duckdb"
    argv = [PY, "-m", "ingest", "blobs", "--db", str(db), "--container", container.container_name, "--retries", "0",
            "--batch-events", "15", "--log-format", "json", "-q"]
    kills = 0
    for after in (1, 3, 2):  # commits to wait for (8 batches of 2 blobs in all)
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seen = 0
        for raw in proc.stderr:
            if b'"event":"blob_batch_committed"' in raw:
                seen += 1
                if seen >= after:
                    break
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.stderr.close()
        proc.wait(timeout=30)
        _assert_positions_behind_data(db, written)
    assert kills == 3
    final = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == exitcodes.OK, final.stderr
    ids = event_ids(db)
    assert len(ids) == len(set(ids)) == len(want) and set(ids) == want
    sizes = {b.name: b.size for b in container.list_blobs()}
    assert dict(query(db, "SELECT blob, byte_offset FROM blob_state")) == sizes
    assert query(db, "SELECT count(*) FROM ingest_runs WHERE outcome = 'abandoned'")[0][0] >= 2


def _assert_positions_behind_data(db, written: list[list[dict]]) -> None:
    if not db.exists():
        return
    stored = set(event_ids(db))
    for blob, line_count in query(db, "SELECT blob, line_count FROM blob_state"):
        hour = int(blob.split("/h=")[1][:2])
        missing = {e["id"] for e in written[hour][:line_count]} - stored
        assert not missing, f"{blob}: read position (line {line_count}) runs ahead of the data"


def test_the_reader_holds_back_skips_over_long_lines_and_reads_from_the_stored_offset():
    """The cursor alone, on bytes in memory (no storage): pieces, positions and tails."""
    from ingest.blobs.client import Listed
    from ingest.blobs.cursor import pieces

    data = b"a1\nb22\n" + b"x" * 40 + b"\nc3\nd4"  # a 40-byte line (over the 16-byte chunk), a partial last line
    reads = []

    def read(name, offset, length):
        reads.append((offset, length))
        return data[offset:offset + length]

    blob = Listed("b", len(data), "e1", None)
    got = list(pieces(blob, None, read, chunk=16))
    assert [(p.data, p.first_line, p.too_long) for p in got] == [
        (b"a1\nb22\n", 1, []), (b"", 3, [(3, 41)]), (b"c3\n", 4, [])]
    last = got[-1].state
    assert (last["byte_offset"], last["line_count"]) == (len(data) - 2, 4)  # "d4" waits for its line end

    grown = data + b"\ne5\n"
    blob2 = Listed("b", len(grown), "e2", None)
    reads.clear()
    more = list(pieces(blob2, last, lambda n, o, ln: grown[o:o + ln], chunk=16))
    assert [(p.data, p.first_line) for p in more] == [(b"d4\ne5\n", 5)]
    changed = grown[:last["byte_offset"] - 1] + b"Z" + grown[last["byte_offset"]:]
    again = list(pieces(blob2, last, lambda n, o, ln: changed[o:o + ln], chunk=64))
    assert again[0] == "its bytes before the stored offset changed (replaced)"
    assert again[1].first_line == 1 and again[1].data.startswith(b"a1\n")



def test_a_store_of_schema_21_gets_the_blob_state_table_on_open(tmp_path):
    from ingest.schema import MIGRATIONS
    from ingest.store import Store

    db = str(tmp_path / "old.duckdb")
    Store.open(db).close()
    with duckdb.connect(db) as con:  # as provlens before the blob source left it
        con.execute("DROP TABLE blob_state")
        con.execute("ALTER TABLE events DROP COLUMN skip_detail")  # and before migration 23
        con.execute("DELETE FROM schema_version WHERE version > 21")
    with Store.open(db) as store:
        assert store.migrations_applied == [v for v, _, _ in MIGRATIONS if v > 21]  # 22 (blob_state) and after
        assert store.blob_states("https://acct.blob.core.windows.net/c") == {}


def test_a_real_shaped_blob_loads_the_same_rows_as_its_graph_form(container, conn_env, tmp_path):
    """tests/data/real/derived/diagnostic-settings-PT1H.json (built by build_shapes.py from the real samples' Graph
    form: PascalCase keys inside ``properties``, numeric enums, CRLF lines) uploaded as an hour blob loads the same
    typed rows as derived/graph-page.json loaded with ``ingest files`` (the blob source reads records as the blob holds
    them; ingest/shapes.py unwraps them)."""
    derived = ROOT / "tests" / "data" / "real" / "derived"
    graph = ingest_files(str(tmp_path / "graph.duckdb"), [str(derived / "graph-page.json")], quiet=True)
    assert graph.exit_code == exitcodes.OK and graph.loaded.new > 0
    append_blob(container, hour_blob(13), (derived / "diagnostic-settings-PT1H.json").read_bytes())
    outcome = load(tmp_path / "blob.duckdb", container)
    assert outcome.exit_code == exitcodes.OK, outcome
    want = typed_rows(tmp_path / "graph.duckdb")
    assert typed_rows(tmp_path / "blob.duckdb") == want and len(want) == graph.loaded.new
    # the fields a half-read wrapper leaves empty are filled
    assert all(r[TYPED.index("status")] and r[TYPED.index("service_principal_id")] for r in want)
