"""Build the derived shapes in ``derived/`` from the real samples in this folder (see SOURCES.md).

``python tests/data/real/build_shapes.py`` rewrites ``derived/``; ``tests/test_real_shapes.py`` checks that the
committed files equal a fresh run. Everything here is written independently of ``ingest/shapes.py`` (its own
key tables and enum lists), so the tests compare provlens's reading of each shape with a second spelling.

- ``graph-page.json``: the Graph form of every sample event: the two Graph docs examples (example 1 with the
  docs' trailing comma removed: as published it is not valid JSON), graph2otel's live record, graph2otel's
  blob fixture's ``properties``, and the elastic capture's three records, unwrapped and turned into Graph's
  spelling (``Id``/``Name`` -> ``id``/``displayName``, numeric enums -> names).
- From that page: a diagnostic-settings blob (``PT1H.json``, JSON Lines, CRLF, PascalCase nested keys and numeric
  enums as in the elastic capture), an Event Hub message and an Event Hub capture (one message per line), Log
  Analytics ``AADProvisioningLogs`` as ``az monitor log-analytics query -o json`` prints it, as the Logs API's
  ``tables`` form and as the portal's CSV export, Graph PowerShell 7 ``ConvertTo-Json -Depth 10`` output,
  Windows PowerShell 5.1's (UTF-16LE with BOM, ``\\/Date(ms)\\/``), and a ``ConvertTo-Json`` at its default
  depth 2 (nested objects cut to type names).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "derived"

# Graph's enum members in their schema order (microsoftgraph/msgraph-cli src/generated/Models/*.cs).
RESULT = ["success", "failure", "skipped", "warning", "unknownFutureValue"]
STEP_TYPE = ["import", "scoping", "matching", "processing", "referenceResolution", "export", "unknownFutureValue"]

WORKSPACE = "0f0e0d0c-0b0a-4909-8807-060504030201"  # a made-up Log Analytics workspace id (column TenantId)


def _load_lenient(path: Path) -> dict:
    """The docs' example 1 has a trailing comma after the last modifiedProperties item."""
    return json.loads(re.sub(r",(\s*[\]}])", r"\1", path.read_text(encoding="utf-8")))


# ------------------------------------------------------------------ diagnostic settings -> Graph (the elastic capture)
def _named(obj: dict, *extra: str) -> dict:
    out = {"id": obj.get("Id"), "displayName": obj.get("Name")}
    for key in extra:
        if key in obj:
            out[key] = obj[key]
    return out


def graph_from_diagnostic(props: dict) -> dict:
    event = {}
    for key, value in props.items():
        if key == "servicePrincipal":
            value = _named(value)
        elif key in ("sourceSystem", "targetSystem"):
            value = _named(value, "details")
        elif key in ("sourceIdentity", "targetIdentity"):
            value = _named(value, "identityType", "details")
        elif key == "initiatedBy":
            value = {"id": value["Id"], "displayName": value["Name"], "initiatorType": value["Type"]}
        elif key == "provisioningStatusInfo":
            value = {"status": value["Status"], "errorInformation": value["errorInformation"]}
        elif key == "statusInfo":
            value = {"status": RESULT[value["Status"]]}
        elif key == "provisioningSteps":
            value = [{**s, "provisioningStepType": STEP_TYPE[s["provisioningStepType"]], "status": RESULT[s["status"]]}
                     for s in value]
        event[key] = value
    return event


def graph_events() -> list[dict]:
    events = []
    for name in ("graph-docs-list-example1.json", "graph-docs-list-example2.json"):
        events.extend(_load_lenient(HERE / name)["value"])
    events.append(json.loads((HERE / "graph2otel-live-provisioning.json").read_text(encoding="utf-8")))
    events.append(json.loads((HERE / "graph2otel-blob-record.json").read_text(encoding="utf-8"))["properties"])
    for line in (HERE / "elastic-provisioninglogs-raw.log").read_text(encoding="utf-8").splitlines():
        events.append(graph_from_diagnostic(json.loads(line)["properties"]))
    return events


# ------------------------------------------------------------------ Graph -> diagnostic settings
def _diag_named(obj: dict | None, *extra: str) -> dict | None:
    if not isinstance(obj, dict):
        return obj
    out = {k: obj[k] for k in extra if k in obj}
    out.update({"Id": obj.get("id"), "Name": obj.get("displayName")})
    return out


def _enum_index(values: list[str], value: object) -> object:
    lowered = [v.lower() for v in values]
    return lowered.index(value.lower()) if isinstance(value, str) and value.lower() in lowered else value


def diagnostic_properties(event: dict) -> dict:
    props = {}
    for key, value in event.items():
        if key == "servicePrincipal":
            value = _diag_named(value)
        elif key in ("sourceSystem", "targetSystem"):
            value = _diag_named(value, "details")
        elif key in ("sourceIdentity", "targetIdentity"):
            value = _diag_named(value, "identityType", "details")
        elif key == "initiatedBy":
            value = {"Type": value.get("initiatorType", value.get("initiatingType")), "Id": value.get("id"),
                     "Name": value.get("displayName")}
        elif key == "provisioningStatusInfo":
            value = {"Status": value.get("status"), "errorInformation": value.get("errorInformation")}
        elif key == "statusInfo":
            value = {"Status": _enum_index(RESULT, value.get("status"))}
        elif key == "provisioningSteps":
            value = [{**s, "provisioningStepType": _enum_index(STEP_TYPE, s.get("provisioningStepType")),
                      "status": _enum_index(RESULT, s.get("status"))} for s in value]
        props[key] = value
    return props


def diagnostic_record(event: dict) -> dict:
    status = (event.get("provisioningStatusInfo") or {}).get("status") or ""
    error = (event.get("provisioningStatusInfo") or {}).get("errorInformation") or {}
    tenant = event.get("tenantId") or ""
    return {"time": event["activityDateTime"], "resourceId": f"/tenants/{tenant}/providers/Microsoft.aadiam",
            "operationName": "Provisioning activity", "operationVersion": "1.0", "category": "ProvisioningLogs",
            "tenantId": tenant, "resultType": status.capitalize(), "resultSignature": error.get("errorCode") or "None",
            "durationMs": event.get("durationInMilliseconds"), "correlationId": event.get("changeId"),
            "identity": event["id"], "Level": 4, "properties": diagnostic_properties(event)}


# ------------------------------------------------------------------ Graph -> Log Analytics AADProvisioningLogs
LA_COLUMNS = [  # (column, type) in the table's order (azure-monitor-docs tables/aadprovisioninglogs.md)
    ("TenantId", "string"), ("SourceSystem", "string"), ("TimeGenerated", "datetime"), ("AADTenantId", "string"),
    ("Category", "string"), ("ChangeId", "string"), ("CorrelationId", "string"), ("CycleId", "string"),
    ("DurationMs", "long"), ("Id", "string"), ("InitiatedBy", "string"), ("JobId", "string"),
    ("ModifiedProperties", "string"), ("OperationName", "string"), ("OperationVersion", "string"),
    ("ProvisioningAction", "string"), ("ProvisioningStatusInfo", "string"), ("ProvisioningSteps", "string"),
    ("ResultDescription", "string"), ("ResultSignature", "string"), ("ResultType", "string"),
    ("ServicePrincipal", "string"), ("SourceIdentity", "string"), ("TargetIdentity", "string"),
    ("TargetSystem", "string"), ("Type", "string"),
]


def _text(value: object) -> str:
    return "" if value is None else json.dumps(value, separators=(",", ":"))


def log_analytics_row(event: dict) -> dict:
    """One row, values typed as the Logs API returns them (dynamic columns as JSON text, the nested keys spelt as
    diagnostic settings spell them: the table is fed from them)."""
    props = diagnostic_properties(event)
    status = event.get("provisioningStatusInfo") or {}
    error = status.get("errorInformation") or {}
    return {
        "TenantId": WORKSPACE, "SourceSystem": "Azure", "TimeGenerated": event["activityDateTime"],
        "AADTenantId": event.get("tenantId"), "Category": "ProvisioningLogs", "ChangeId": event.get("changeId"),
        "CorrelationId": event.get("changeId"), "CycleId": event.get("cycleId"),
        "DurationMs": event.get("durationInMilliseconds"), "Id": event["id"],
        "InitiatedBy": _text(props.get("initiatedBy")), "JobId": event.get("jobId"),
        "ModifiedProperties": _text(props.get("modifiedProperties")), "OperationName": "Provisioning activity",
        "OperationVersion": "1.0", "ProvisioningAction": event.get("provisioningAction"),
        "ProvisioningStatusInfo": _text(props.get("provisioningStatusInfo")),
        "ProvisioningSteps": _text(props.get("provisioningSteps")),
        "ResultDescription": error.get("reason") or "", "ResultSignature": error.get("errorCode") or "None",
        "ResultType": (status.get("status") or "").capitalize(),
        "ServicePrincipal": _text(props.get("servicePrincipal")),
        "SourceIdentity": _text(props.get("sourceIdentity")), "TargetIdentity": _text(props.get("targetIdentity")),
        "TargetSystem": _text(props.get("targetSystem")), "Type": "AADProvisioningLogs",
    }


def az_cli_rows(events: list[dict]) -> list[dict]:
    """``az monitor log-analytics query -o json``: every value a string, plus the table's name."""
    return [{**{k: "" if v is None else str(v) for k, v in log_analytics_row(e).items()}, "TableName": "PrimaryResult"}
            for e in events]


def logs_api_result(events: list[dict]) -> dict:
    rows = [[log_analytics_row(e)[name] for name, _ in LA_COLUMNS] for e in events]
    return {"tables": [{"name": "PrimaryResult", "columns": [{"name": n, "type": t} for n, t in LA_COLUMNS],
                        "rows": rows}]}


def portal_time(text: str) -> str:
    """The portal's CSV time: ``8/23/2022, 1:36:50.353 PM`` (UTC, milliseconds)."""
    instant = datetime.fromisoformat(text.replace("Z", "+00:00")[:23] + "+00:00"
                                     if "." in text else text.replace("Z", "+00:00")).astimezone(timezone.utc)
    hour = instant.hour % 12 or 12
    return (f"{instant.month}/{instant.day}/{instant.year}, {hour}:{instant.minute:02d}:{instant.second:02d}."
            f"{instant.microsecond // 1000:03d} {'AM' if instant.hour < 12 else 'PM'}")


def portal_csv(events: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([f"{n} [UTC]" if t == "datetime" else n for n, t in LA_COLUMNS])
    for e in events:
        row = log_analytics_row(e)
        row["TimeGenerated"] = portal_time(row["TimeGenerated"])
        writer.writerow(["" if row[n] is None else row[n] for n, _ in LA_COLUMNS])
    return buf.getvalue()


# ------------------------------------------------------------------ Graph -> Graph PowerShell ConvertTo-Json
PS_TYPES = {  # property -> the SDK model its value is (Microsoft.Graph.PowerShell.Models.*)
    "ProvisioningStatusInfo": "MicrosoftGraphProvisioningStatusInfo",
    "ErrorInformation": "MicrosoftGraphProvisioningErrorInfo", "ProvisioningSteps": "MicrosoftGraphProvisioningStep",
    "Details": "MicrosoftGraphDetailsInfo", "ModifiedProperties": "MicrosoftGraphModifiedProperty",
    "ServicePrincipal": "MicrosoftGraphProvisioningServicePrincipal",
    "SourceIdentity": "MicrosoftGraphProvisionedIdentity", "TargetIdentity": "MicrosoftGraphProvisionedIdentity",
    "SourceSystem": "MicrosoftGraphProvisioningSystem", "TargetSystem": "MicrosoftGraphProvisioningSystem",
    "InitiatedBy": "MicrosoftGraphInitiator", "StatusInfo": "MicrosoftGraphStatusBase",
}
DICTIONARY = "System.Collections.Generic.Dictionary`2[System.String,System.Object]"


def _pascal(key: str) -> str:
    return key[:1].upper() + key[1:]


def powershell_object(value: object, key: str = "") -> object:
    """An SDK model as ConvertTo-Json writes it: PascalCase properties plus ``AdditionalProperties``; a
    free-form ``details`` map is an object whose entries all sit in ``AdditionalProperties``."""
    if isinstance(value, list):
        return [powershell_object(v, key) for v in value]
    if not isinstance(value, dict):
        return value
    if key == "details":
        return {"AdditionalProperties": dict(value)}
    out = {_pascal(k): powershell_object(v, k) for k, v in value.items() if not k.startswith("@")}
    out["AdditionalProperties"] = {k: v for k, v in value.items() if k.startswith("@")}
    return out


def powershell7(events: list[dict]) -> str:
    return json.dumps([powershell_object(e) for e in events], indent=2, ensure_ascii=False) + "\n"


def _ms_date(text: str) -> str:
    instant = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00")))
    return f"/Date({int(instant.timestamp() * 1000)})/"


def powershell51(events: list[dict]) -> bytes:
    objs = [powershell_object(e) for e in events]
    for obj in objs:
        obj["ActivityDateTime"] = _ms_date(obj["ActivityDateTime"])
    text = json.dumps(objs, indent=4, ensure_ascii=False).replace('"/Date(', '"\\/Date(').replace(')/"', ')\\/"')
    return "\ufeff".encode("utf-16-le") + text.replace("\n", "\r\n").encode("utf-16-le")


def cut(value: object, depth: int, key: str = "", limit: int = 2) -> object:
    """ConvertTo-Json past ``-Depth`` (the piped collection is level 0, each event level 1): an object or array
    deeper than ``limit`` is written as its type name."""
    if not isinstance(value, (dict, list)):
        return value
    if depth > limit:
        model = PS_TYPES.get(key)
        if isinstance(value, list):
            return "System.Object[]"
        return f"Microsoft.Graph.PowerShell.Models.{model}" if model else DICTIONARY
    if isinstance(value, list):
        return [cut(v, depth + 1, key, limit) for v in value]
    return {k: cut(v, depth + 1, k, limit) for k, v in value.items()}


def powershell_depth2(events: list[dict]) -> str:
    return json.dumps(cut([powershell_object(e) for e in events], 0), indent=2, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------ all of it
def build() -> dict[str, bytes]:
    events = graph_events()
    records = [diagnostic_record(copy.deepcopy(e)) for e in events]
    page = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#auditLogs/provisioning", "value": events}
    half = len(records) // 2
    return {
        "graph-page.json": (json.dumps(page, indent=2, ensure_ascii=False) + "\n").encode(),
        "diagnostic-settings-PT1H.json": "".join(json.dumps(r, separators=(",", ":")) + "\r\n"
                                                 for r in records).encode(),
        "eventhub-message.json": json.dumps({"records": records}, separators=(",", ":")).encode(),
        "eventhub-capture.ndjson": "".join(json.dumps({"records": part}, separators=(",", ":")) + "\n"
                                           for part in (records[:half], records[half:])).encode(),
        "log-analytics-az.json": (json.dumps(az_cli_rows(events), indent=2) + "\n").encode(),
        "log-analytics-api.json": json.dumps(logs_api_result(events), separators=(",", ":")).encode(),
        "log-analytics-portal.csv": portal_csv(events).encode("utf-8-sig"),
        "powershell7.json": powershell7(events).encode(),
        "powershell51.json": powershell51(events),
        "powershell-depth2.json": powershell_depth2(events).encode(),
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, data in build().items():
        (OUT / name).write_bytes(data)
        print(f"{OUT / name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
