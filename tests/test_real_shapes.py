"""Issue 22, items 1 and 5: every wrapper an Entra admin holds loads into the same rows as the Graph form of the
same events; real public samples (tests/data/real, SOURCES.md) read right field by field; a load whose events
mostly lack a status, service principal or identity warns, and the freshness panel shows it."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import json
import re
from pathlib import Path

import duckdb
import pytest

from ingest import exitcodes, shapes
from ingest.file_ingest import ingest_files
from ingest.schema import EVENT_COLUMNS
from queries.export import export_bytes
from tests.conftest import run_cli
from tests.test_app_pages import _app, _open

REAL = Path(__file__).parent / "data" / "real"
DERIVED = REAL / "derived"
TYPED = [c for c, _ in EVENT_COLUMNS if c not in ("raw", "first_ingested_at", "last_ingested_at", "ingest_run_id")]
# Surfaces that keep times to the millisecond only: the portal's CSV ("1:36:50.353 PM") and Windows PowerShell's
# \/Date(ms)\/. Their rows are compared with the Graph form's times cut to the millisecond.
MILLISECONDS = {"log-analytics-portal.csv", "powershell51.json"}
SHAPES = ["diagnostic-settings-PT1H.json", "eventhub-message.json", "eventhub-capture.ndjson",
          "log-analytics-az.json", "log-analytics-api.json", "log-analytics-portal.csv", "powershell7.json",
          "powershell51.json"]


def _build_module():
    spec = importlib.util.spec_from_file_location("build_shapes", REAL / "build_shapes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(tmp_path: Path, *paths: Path | str, name: str = "store"):
    db = tmp_path / f"{name}.duckdb"
    outcome = ingest_files(str(db), [str(p) for p in paths], quiet=True)
    return db, outcome


def _typed(db: Path) -> dict[str, dict]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(f"SELECT {', '.join(TYPED)} FROM events").fetchall()
    return {r[0]: dict(zip(TYPED, r)) for r in rows}


def _exported(db: Path) -> list[dict]:
    data, _ = export_bytes(str(db), "events")
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def _to_ms(text: str) -> str:
    return re.sub(r"(\.\d{3})\d*Z$", r"\g<1>000Z", text)


@pytest.fixture(scope="module")
def graph_rows(tmp_path_factory):
    db, outcome = _load(tmp_path_factory.mktemp("graph"), DERIVED / "graph-page.json")
    assert outcome.exit_code == exitcodes.OK and not outcome.rejected and outcome.warning is None
    return _typed(db), _exported(db)


def test_the_committed_derived_shapes_equal_a_fresh_build():
    built = _build_module().build()
    assert sorted(built) == sorted(p.name for p in DERIVED.iterdir())
    for name, data in built.items():
        assert (DERIVED / name).read_bytes() == data, f"{name}: run python tests/data/real/build_shapes.py"


@pytest.mark.parametrize("shape", SHAPES)
def test_every_wrapper_loads_the_same_rows_as_the_graph_form(tmp_path, graph_rows, shape):
    typed, exported = graph_rows
    db, outcome = _load(tmp_path, DERIVED / shape)
    assert outcome.exit_code == exitcodes.OK and not outcome.rejected and outcome.warning is None
    rows = _typed(db)
    assert rows.keys() == typed.keys()
    for ident, want in typed.items():
        got = dict(rows[ident])
        if shape in MILLISECONDS:
            want = {**want, "activity_time": want["activity_time"].replace(
                microsecond=want["activity_time"].microsecond // 1000 * 1000)}
        assert got == want, (shape, ident)
    again = _exported(db)
    if shape in MILLISECONDS:
        exported = [{**r, "activity_time": _to_ms(r["activity_time"])} for r in exported]
    assert again == exported


def test_the_graph_form_passes_untouched_and_a_hand_unwrapped_blob_is_normalised(tmp_path, graph_rows):
    page = json.loads((DERIVED / "graph-page.json").read_text(encoding="utf-8"))
    assert all(shapes.to_event(e) is e for e in page["value"])  # the fast path copies nothing
    # the "unwrapped by hand" blob: properties as NDJSON (a name the bulk NDJSON path takes)
    lines = (DERIVED / "diagnostic-settings-PT1H.json").read_text(encoding="utf-8").splitlines()
    unwrapped = tmp_path / "unwrapped.ndjson"
    unwrapped.write_text("".join(json.dumps(json.loads(line)["properties"]) + "\n" for line in lines))
    db, outcome = _load(tmp_path, unwrapped)
    assert outcome.warning is None and _typed(db) == graph_rows[0]


@pytest.mark.parametrize("encoding,bom,gz", [("utf-8", "\ufeff", False), ("utf-16-le", "", True),
                                              ("utf-16-be", "\ufeff", False), ("utf-16-be", "", False)])
def test_encodings_from_the_bom_or_sniffed(tmp_path, graph_rows, encoding, bom, gz):
    text = (DERIVED / "powershell7.json").read_text(encoding="utf-8")
    data = (bom + text).encode(encoding)
    path = tmp_path / ("ps.json.gz" if gz else "ps.json")
    path.write_bytes(gzip.compress(data) if gz else data)
    db, outcome = _load(tmp_path, path)
    assert outcome.exit_code == exitcodes.OK and not outcome.rejected
    assert _typed(db) == graph_rows[0]


def test_a_big_utf16_file_is_streamed_whole(tmp_path, monkeypatch, graph_rows):
    monkeypatch.setenv("PROVLENS_FILES_MAX_DOC_MB", "0.004")  # the 4 KiB floor: every shape here is streamed
    for name, data in [("ps51.json", (DERIVED / "powershell51.json").read_bytes()),
                       ("hub.json", (DERIVED / "eventhub-message.json").read_bytes())]:
        (tmp_path / name).write_bytes(data)
        db, outcome = _load(tmp_path, tmp_path / name, name=name)
        assert not outcome.rejected, name
        assert _typed(db).keys() == graph_rows[0].keys(), name


def test_a_directory_of_downloaded_blobs(tmp_path, graph_rows):
    lines = (DERIVED / "diagnostic-settings-PT1H.json").read_bytes().split(b"\r\n")
    root = tmp_path / "insights-logs-provisioninglogs"
    for i, part in enumerate((lines[:3], lines[3:])):
        hour = root / "tenantId=5611623b-9128-461e-9d7f-a0d9c270ead2" / "y=2022" / "m=08" / "d=23" / f"h=1{i}" / "m=00"
        hour.mkdir(parents=True)
        (hour / "PT1H.json").write_bytes(b"\r\n".join(part))
    db, outcome = _load(tmp_path, root)
    assert outcome.files == 2 and not outcome.rejected
    assert _typed(db) == graph_rows[0]


def test_a_depth_cut_powershell_export_is_rejected_with_the_fix(tmp_path):
    db = tmp_path / "cut.duckdb"
    proc = run_cli("ingest", "files", "--db", str(db), "-q", str(DERIVED / "powershell-depth2.json"))
    assert proc.returncode == exitcodes.FAILED, proc.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 0
        rejects = con.execute("SELECT file, position, reason FROM ingest_rejects ORDER BY position").fetchall()
    assert [p for _, p, _ in rejects] == [f"item[{i}]" for i in range(7)]
    for file, _, reason in rejects:
        assert file.endswith("powershell-depth2.json")
        assert "re-export with `ConvertTo-Json -Depth 10`" in reason
        assert re.search(r"is '(Microsoft\.Graph\.PowerShell\.Models\.|System\.Collections\.)", reason), reason


def test_log_analytics_result_columns_stand_in_for_a_missing_status(tmp_path):
    # A row whose ProvisioningStatusInfo is empty: ResultType / ResultSignature / ResultDescription give the outcome.
    row = json.loads((DERIVED / "log-analytics-az.json").read_text())[1]  # the Graph docs' 409 (example 2)
    assert row["ResultType"] == "Failure" and row["ResultSignature"] == "ContosoEntryConflict"
    row["ProvisioningStatusInfo"] = ""
    (tmp_path / "la.json").write_text(json.dumps([row]))
    db, outcome = _load(tmp_path, tmp_path / "la.json")
    (got,) = _typed(db).values()
    assert (got["status"], got["error_code"], got["http_status"]) == ("failure", "ContosoEntryConflict", 409)


# ------------------------------------------------------------------ the real samples, field by field
def test_graph2otel_live_record(tmp_path):
    # Values read from tests/data/real/graph2otel-live-provisioning.json (a live tenant's record, 2026-07-17).
    db, outcome = _load(tmp_path, REAL / "graph2otel-live-provisioning.json")
    assert outcome.exit_code == exitcodes.OK and outcome.warning is None
    e = _typed(db)["a3f2b676-f27c-832e-6757-be2d5ed806ba"]
    assert (e["status"], e["action"], e["error_code"]) == ("skipped", "other", None)
    assert (e["service_principal_id"], e["service_principal_name"]) == ("e7e9d06f-8673-4759-bfed-67d499095d2f",
                                                                        "Grafana PS")
    assert (e["source_id"], e["source_type"]) == ("ae0c9dc4-faba-477f-952c-423c67237700", "Group")
    assert (e["target_id"], e["target_type"]) == ("ffsdj2g8zwtfkd", "urn:ietf:params:scim:schemas:core:2.0:Group")
    assert e["user_name"] is None  # a group: no userName anywhere in the record
    assert (e["skip_reason"], e["skip_category"]) == ("RedundantExport", "no_change")  # "already match"
    assert e["import_kind"] == "delta" and e["duration_ms"] == 630


def test_graph2otel_blob_fixture(tmp_path):
    # tests/data/real/graph2otel-blob-record.json: one pretty-printed diagnostic-settings record.
    db, outcome = _load(tmp_path, REAL / "graph2otel-blob-record.json")
    assert outcome.exit_code == exitcodes.OK and not outcome.rejected
    e = _typed(db)["prov-0001"]
    assert (e["status"], e["action"], e["job_id"], e["cycle_id"]) == ("success", "create", "job-abc", "cycle-xyz")
    assert (e["service_principal_id"], e["service_principal_name"]) == ("sp-1", "Provisioning App")
    assert (e["source_id"], e["source_name"], e["target_id"], e["target_name"]) == (
        "src-1", "Source User", "tgt-1", "Target User")
    with duckdb.connect(str(db), read_only=True) as con:
        envelope = json.loads(con.execute("SELECT raw->>'$._envelope' FROM events").fetchone()[0])
    assert envelope == {"shape": "azure-monitor-diagnostic-settings", "time": "2026-07-17T13:03:13.4270244Z",
                        "category": "ProvisioningLogs"}


def test_elastic_event_hub_capture(tmp_path):
    # tests/data/real/elastic-provisioninglogs-raw.log: three diagnostic-settings records from a real tenant, nested
    # keys in PascalCase (servicePrincipal.Id/Name, provisioningStatusInfo.Status) and numeric step enums. The second
    # and third share one id (the third is elastic's edited copy with a Contoso 409): one row for the two.
    db, outcome = _load(tmp_path, REAL / "elastic-provisioninglogs-raw.log")
    assert outcome.exit_code == exitcodes.OK and not outcome.rejected and outcome.warning is None
    rows = _typed(db)
    assert len(rows) == 2
    skip = rows["d6cbb0bd-c3ec-6455-bd3e-4282141ce369"]
    assert (skip["status"], skip["action"], skip["error_code"]) == ("skipped", "create", None)
    assert (skip["service_principal_id"], skip["service_principal_name"]) == (
        "74866461-3754-40ed-a743-9c88ff29643e", "Dropbox Business")
    assert (skip["source_id"], skip["source_name"], skip["source_type"]) == (
        "7383d412-41f2-478f-a317-7396cc32ce9e", "Ellie", "User")
    assert skip["target_id"] is None  # "Id": "" (never created)
    assert skip["user_name"] == "ellie@mauriziobrancaoutlook.onmicrosoft.com"  # details.UserPrincipalName
    assert skip["skip_reason"] == "AttributeValidationFailed"  # its category is issue 22 item 3's (not checked here)
    assert (skip["tenant_id"], skip["duration_ms"], skip["import_kind"]) == (
        "5611623b-9128-461e-9d7f-a0d9c270ead2", 828, "delta")
    created = rows["ebc7b845-7505-2dfa-269a-93257fab469a"]
    assert created["status"] in ("success", "failure")  # which copy of the repeated id wins is issue 22 item 3's
    assert created["service_principal_id"] == "74866461-3754-40ed-a743-9c88ff29643e"
    assert created["source_id"] == "e3b2b242-4ccb-4cf1-9b8b-004cf034a458"
    assert created["target_id"] == "dbmid:AAAyj2SkvwD4D6hbiVdfVymbfwENG-roFu4"
    if created["status"] == "success":
        assert (created["user_name"], created["action"]) == ("joel.miller@mauriziobrancaoutlook.onmicrosoft.com",
                                                             "create")
    else:
        assert (created["error_code"], created["error_category"], created["http_status"]) == (
            "ContosoEntryConflict", "nonServiceFailure", 409)


def test_graph_docs_examples(tmp_path):
    # api-reference/v1.0/api/provisioningobjectsummary-list.md. Example 2 (a group's 409) loads as published.
    db, outcome = _load(tmp_path, REAL / "graph-docs-list-example2.json")
    assert outcome.exit_code == exitcodes.OK and not outcome.rejected
    e = _typed(db)["gc532ff9-r265-ec76-861e-42e2970a8218"]
    assert (e["status"], e["action"], e["error_code"], e["error_category"], e["http_status"]) == (
        "failure", "create", "ContosoEntryConflict", "nonServiceFailure", 409)
    assert (e["service_principal_id"], e["service_principal_name"]) == ("chc46a42-966b-47d7-9774-576b1c8bd0b8",
                                                                        "Contoso")
    assert (e["source_id"], e["source_name"], e["source_type"]) == ("5e6c9rae-ab4d-5239-8ad0-174391d110eb",
                                                                    "Self-service Pilot", "Group")
    assert (e["target_id"], e["target_type"], e["user_name"]) == (None, "Group", None)
    # Example 1 as published is not JSON (a comma after the last modifiedProperties item): rejected, with where.
    db1, bad = _load(tmp_path, REAL / "graph-docs-list-example1.json", name="example1")
    assert bad.exit_code == exitcodes.FAILED
    with duckdb.connect(str(db1), read_only=True) as con:
        ((position, reason),) = con.execute("SELECT position, reason FROM ingest_rejects").fetchall()
    assert position == "value[0]" and "invalid JSON at character 2624" in reason
    # ... and with the comma removed (derived/graph-page.json), its fields: "Import" steps read case-insensitively.
    db2, _ = _load(tmp_path, DERIVED / "graph-page.json", name="page")
    e1 = _typed(db2)["75b5b0ae-9fc5-8d0e-e0a9-7y6a4728de56"]
    assert (e1["status"], e1["action"], e1["error_code"], e1["import_kind"]) == ("success", "create", None, "full")
    assert (e1["service_principal_id"], e1["source_type"], e1["target_id"], e1["target_type"]) == (
        "6cc35b93-185a-4485-a519-50c09549g3ad", "RolesCompound", "6nn35b93-185a-4485-a519-50c09549f3ad",
        "ServicePrincipal")


def test_records_without_the_event_are_rejected_with_the_reason(tmp_path):
    # elastic's time-format corner cases: diagnostic-settings envelopes with no properties at all.
    db, outcome = _load(tmp_path, REAL / "elastic-time-formats-corner-cases.log")
    assert outcome.exit_code == exitcodes.FAILED and outcome.rejected == 11
    with duckdb.connect(str(db), read_only=True) as con:
        reasons = {r for (r,) in con.execute("SELECT DISTINCT reason FROM ingest_rejects").fetchall()}
    assert reasons == {'an Azure Monitor record without "properties" (the provisioning event): nothing to load'}


# ------------------------------------------------------------------ item 5: silent emptiness
def _unknown_wrapper(tmp_path: Path) -> Path:
    """Events nested under a key provlens does not know, with only the id and time hoisted (someone's script)."""
    page = json.loads((DERIVED / "graph-page.json").read_text(encoding="utf-8"))
    wrapped = [{"id": e["id"], "activityDateTime": e["activityDateTime"], "event": e} for e in page["value"]]
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps(wrapped))
    return path


def test_a_load_of_mostly_empty_events_warns_and_its_run_keeps_the_warning(tmp_path):
    db = tmp_path / "empty.duckdb"
    proc = run_cli("ingest", "files", "--db", str(db), "-q", str(_unknown_wrapper(tmp_path)))
    assert proc.returncode == exitcodes.OK, proc.stderr  # loaded, but said loudly
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("warning: most of")]
    for field in ("provisioningStatusInfo.status", "servicePrincipal.id", "sourceIdentity.id", "wrapper"):
        assert field in line
    with duckdb.connect(str(db), read_only=True) as con:
        (message,) = con.execute("SELECT message FROM ingest_runs").fetchone()
    assert line in message.splitlines()
    from queries.db import run

    fresh = run(str(db), "freshness")
    assert fresh["last_warning"].iloc[0] == line.removeprefix("warning: ")
    # a good load next: the source's last run has no warning any more
    run_cli("ingest", "files", "--db", str(db), "-q", str(REAL / "graph2otel-live-provisioning.json"), check=True)
    assert run(str(db), "freshness")["last_warning"].isna().all()


def test_the_freshness_panel_shows_the_warning(tmp_path, monkeypatch):
    db, outcome = _load(tmp_path, _unknown_wrapper(tmp_path))
    assert outcome.warning
    at = _open(_app(db, monkeypatch), "overview")
    shown = [m.value for m in at.markdown if "Warning" in m.value]
    assert len(shown) == 1 and "provisioningStatusInfo" in shown[0] and "wrapper" in shown[0], shown


def test_a_blob_record_without_activity_time_takes_the_envelope_time_and_other_categories_are_refused(tmp_path):
    lines = (DERIVED / "diagnostic-settings-PT1H.json").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    del first["properties"]["activityDateTime"]
    other = {**json.loads(lines[1]), "category": "AuditLogs"}
    path = tmp_path / "PT1H.json"
    path.write_text(json.dumps(first) + "\n" + json.dumps(other) + "\n")
    db, outcome = _load(tmp_path, path)
    (row,) = _typed(db).values()
    assert row["activity_time"].isoformat() == "2019-05-04T03:00:54+00:00"  # the envelope's "time"
    with duckdb.connect(str(db), read_only=True) as con:
        ((position, reason),) = con.execute("SELECT position, reason FROM ingest_rejects").fetchall()
    assert position == "line 2" and "'AuditLogs', not ProvisioningLogs" in reason
