"""One normaliser for Entra provisioning events, whatever the wrapper: each record becomes the Graph camelCase event.

Shapes (detected from the record, not the file name): the Graph ``provisioningObjectSummary`` itself (passed on
untouched); Azure Monitor diagnostic-settings records (storage blobs, Event Hub ``records``), whose ``properties``
is the event with PascalCase nested keys and numeric enums; Log Analytics ``AADProvisioningLogs`` rows (``az``
CLI JSON, the Logs API's ``tables`` form, the portal's CSV) with the nested columns as JSON strings; Graph
PowerShell ``ConvertTo-Json`` output (PascalCase, ``AdditionalProperties``, Windows PowerShell's
``\\/Date(ms)\\/``). Keys match case-insensitively; what a wrapper adds around the event is kept under
``_envelope`` in the raw JSON; unknown keys are kept as they are.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import orjson

ENVELOPE_KEY = "_envelope"

# Numeric enum values -> names. Microsoft's Graph schema (CSDL) numbers enum members in the order it declares them;
# the orders below are the v1.0 metadata's, as generated into microsoftgraph/msgraph-cli
# src/generated/Models/{ProvisioningResult,ProvisioningStepType,ProvisioningAction,
# ProvisioningStatusErrorCategory,InitiatorType}.cs (names as in microsoft-graph-docs-contrib
# api-reference/v1.0/resources/provisioningstep.md, provisioningobjectsummary.md). Checked against the real
# diagnostic-settings capture in tests/data/real (an EntrySynchronizationSkip step: type 3, status 2, "skipped").
PROVISIONING_RESULT = ("success", "failure", "skipped", "warning", "unknownFutureValue")
PROVISIONING_STEP_TYPE = ("import", "scoping", "matching", "processing", "referenceResolution", "export",
                          "unknownFutureValue")
PROVISIONING_ACTION = ("other", "create", "delete", "disable", "update", "stagedDelete", "unknownFutureValue")
ERROR_CATEGORY = ("failure", "nonServiceFailure", "success", "unknownFutureValue")
INITIATOR_TYPE = ("user", "application", "system", "unknownFutureValue")


class ShapeError(ValueError):
    """A record that cannot become an event; the message says why and what to do."""


# ------------------------------------------------------------------ the Graph event's keys, per object
# Each object kind: {lower-case key or alias: (canonical key, kind of its value)}. A kind is another object kind,
# "details" (a free-form map: keys kept), "[kind]" (a list of that kind), an enum tuple, or None (a plain value).
def _fields(*names: str, **aliases: str) -> dict[str, tuple[str, object]]:
    out = {n.lower(): (n, None) for n in names}
    out.update({a.lower(): (canonical, None) for a, canonical in aliases.items()})
    return out


_KINDS: dict[str, dict[str, tuple[str, object]]] = {
    "event": {**_fields("id", "activityDateTime", "tenantId", "jobId", "cycleId", "changeId",
                        "durationInMilliseconds", "action"),
              "provisioningaction": ("provisioningAction", PROVISIONING_ACTION),
              "provisioningstatusinfo": ("provisioningStatusInfo", "statusInfo"),
              "statusinfo": ("statusInfo", "betaStatus"),
              "provisioningsteps": ("provisioningSteps", "[step]"),
              "modifiedproperties": ("modifiedProperties", "[modifiedProperty]"),
              "serviceprincipal": ("servicePrincipal", "named"),
              "sourceidentity": ("sourceIdentity", "identity"), "targetidentity": ("targetIdentity", "identity"),
              "sourcesystem": ("sourceSystem", "system"), "targetsystem": ("targetSystem", "system"),
              "initiatedby": ("initiatedBy", "initiator")},
    "statusInfo": {"status": ("status", PROVISIONING_RESULT), "errorinformation": ("errorInformation", "errorInfo")},
    "betaStatus": {**_fields("errorCode", "reason", "additionalDetails", "recommendedAction"),
                   "status": ("status", PROVISIONING_RESULT), "errorcategory": ("errorCategory", ERROR_CATEGORY)},
    "errorInfo": {**_fields("errorCode", "reason", "additionalDetails", "recommendedAction"),
                  "errorcategory": ("errorCategory", ERROR_CATEGORY)},
    "step": {**_fields("name", "description"), "provisioningsteptype": ("provisioningStepType", PROVISIONING_STEP_TYPE),
             "status": ("status", PROVISIONING_RESULT), "details": ("details", "details")},
    "modifiedProperty": _fields("displayName", "oldValue", "newValue"),
    # Diagnostic settings write servicePrincipal/identities/systems as {Id, Name}, initiatedBy as {Id, Name, Type}.
    "named": _fields("id", "displayName", Name="displayName"),
    "identity": {**_fields("id", "displayName", "identityType", Name="displayName"), "details": ("details", "details")},
    "system": {**_fields("id", "displayName", Name="displayName"), "details": ("details", "details")},
    "initiator": {**_fields("id", "displayName", Name="displayName"),
                  "initiatortype": ("initiatorType", INITIATOR_TYPE), "type": ("initiatorType", INITIATOR_TYPE)},
}

_ADDITIONAL = "additionalproperties"
_MS_DATE = re.compile(r"^/Date\((-?\d+)(?:[+-]\d{4})?\)/$")
# ConvertTo-Json past its -Depth writes a nested object as its .NET type name (default depth 2).
_TYPE_NAME = re.compile(r"^(Microsoft\.Graph\.PowerShell\.Models\.\w+|System\.Collections\.\S.*|System\.Object\[\])$")


def _enum(value: object, names: tuple[str, ...]) -> object:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        index = int(value)
        return names[index] if 0 <= index < len(names) else value
    return value


def _flatten(obj: dict) -> dict:
    """PowerShell puts an object's open-ended members under ``AdditionalProperties``: bring them up a level."""
    extra = next((k for k in obj if k.lower() == _ADDITIONAL), None)
    if extra is None:
        return obj
    merged = {k: v for k, v in obj.items() if k != extra}
    if isinstance(obj[extra], dict):
        for k, v in obj[extra].items():
            merged.setdefault(k, v)
    elif obj[extra] is not None:
        merged[extra] = obj[extra]  # a cut-off type name: kept, so the depth check sees it
    return merged


def canonical(obj: object, kind: object = "event") -> object:
    """``obj`` with the Graph event's spelling: known keys matched case-insensitively (and their aliases),
    numeric enums named, ``AdditionalProperties`` flattened; unknown keys and free-form ``details`` kept."""
    if isinstance(kind, tuple):
        return _enum(obj, kind)
    if kind is None:
        return obj
    if isinstance(kind, str) and kind.startswith("["):
        return [canonical(v, kind[1:-1]) for v in obj] if isinstance(obj, list) else obj
    if not isinstance(obj, dict):
        return obj
    obj = _flatten(obj)
    if kind == "details":
        return {k: (_flatten(v) if isinstance(v, dict) else v) for k, v in obj.items()}
    table = _KINDS[kind]
    out: dict = {}
    for key, value in obj.items():
        known = table.get(key.lower())
        if known is None:
            out.setdefault(key, value)
            continue
        name, sub = known
        if name in out and out[name] not in (None, "", {}):  # e.g. both Name and displayName: the first wins
            continue
        out[name] = canonical(value, sub)
    return out


def needs_canonical(event: dict) -> bool:
    """A cheap look (a few dict lookups: it runs on every Graph event) at a record with ``id`` and
    ``activityDateTime``: does it hold spellings the Graph event never has (diagnostic settings'
    ``provisioningStatusInfo.Status``, ``servicePrincipal.Id``, numeric step types)?"""
    status = event.get("provisioningStatusInfo")
    if type(status) is dict and status and "status" not in status:
        return True
    sp = event.get("servicePrincipal")
    if type(sp) is dict and sp and "id" not in sp:
        return True
    steps = event.get("provisioningSteps")
    return bool(steps) and type(steps) is list and type(steps[0]) is dict \
        and type(steps[0].get("provisioningStepType")) is int


def parse_time(value: object) -> object:
    """Windows PowerShell's ``/Date(ms)/`` and the portal CSV's ``8/23/2022, 1:36:50.353 PM`` (UTC) as ISO 8601;
    anything else unchanged (the store rejects what is not a time)."""
    if not isinstance(value, str):
        return value
    m = _MS_DATE.match(value)
    if m:
        instant = datetime.fromtimestamp(int(m.group(1)) / 1000, tz=timezone.utc)
        return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if "/" in value and ("AM" in value or "PM" in value or "," in value):
        for fmt in ("%m/%d/%Y, %I:%M:%S.%f %p", "%m/%d/%Y, %I:%M:%S %p", "%m/%d/%Y %I:%M:%S %p",
                    "%m/%d/%Y, %H:%M:%S.%f", "%m/%d/%Y, %H:%M:%S"):
            try:
                instant = datetime.strptime(value.strip(), fmt).replace(tzinfo=timezone.utc)
            except ValueError:
                continue
            return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


def depth_cut(obj: object, path: str = "") -> str | None:
    """Where a too-shallow ``ConvertTo-Json`` replaced an object by its type name, or None."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            found = depth_cut(v, f"{path}.{k}" if path else k)
            if found:
                return found
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found = depth_cut(v, f"{path}[{i}]")
            if found:
                return found
    elif isinstance(obj, str) and _TYPE_NAME.match(obj):
        return f"{path} is {obj!r}"
    return None


DEPTH_FIX = ("PowerShell's ConvertTo-Json cut this record at its depth limit (default 2), so its nested objects "
             "are type names, not data: re-export with `ConvertTo-Json -Depth 10`")


# ------------------------------------------------------------------ the wrappers
DIAGNOSTIC_ENVELOPE = ("time", "resourceId", "tenantId", "operationName", "operationVersion", "category",
                       "resultType", "resultSignature", "resultDescription", "durationMs", "callerIpAddress",
                       "correlationId", "identity", "Level", "level", "location")


def from_diagnostic(record: dict) -> dict:
    """An Azure Monitor diagnostic-settings record (``{"time", "category": "ProvisioningLogs", "properties"}``):
    the event is ``properties``; the envelope's fields go under ``_envelope``. The envelope's ``time`` stands
    in for a missing ``activityDateTime``."""
    props_key = next(k for k in record if k.lower() == "properties")
    event = canonical(record[props_key])
    if not isinstance(event, dict):
        raise ShapeError("diagnostic-settings record whose properties is not an object")
    envelope = {"shape": "azure-monitor-diagnostic-settings",
                **{k: v for k, v in record.items() if k != props_key}}
    category = str(envelope.get("category") or envelope.get("Category") or "")
    if category and category.lower() != "provisioninglogs":
        raise ShapeError(f"diagnostic-settings record of category {category!r}, not ProvisioningLogs (this file "
                         "holds another log: export the ProvisioningLogs category)")
    if not event.get("activityDateTime"):
        time = next((v for k, v in record.items() if k.lower() == "time"), None)
        if time:
            event["activityDateTime"] = time
    event[ENVELOPE_KEY] = envelope
    return event


# Log Analytics AADProvisioningLogs columns (azure-monitor-docs articles/azure-monitor/reference/tables/
# aadprovisioninglogs.md) -> the event's keys. Nested columns are strings holding JSON. TenantId is the workspace,
# SourceSystem the agent type ("Azure"): both stay in the envelope. TimeGenerated has millisecond precision.
LOG_ANALYTICS_COLUMNS = {
    "id": "id", "timegenerated": "activityDateTime", "aadtenantid": "tenantId", "jobid": "jobId",
    "cycleid": "cycleId", "changeid": "changeId", "durationms": "durationInMilliseconds",
    "provisioningaction": "provisioningAction", "action": "action",
    "provisioningstatusinfo": "provisioningStatusInfo", "provisioningsteps": "provisioningSteps",
    "modifiedproperties": "modifiedProperties", "serviceprincipal": "servicePrincipal",
    "sourceidentity": "sourceIdentity", "targetidentity": "targetIdentity", "targetsystem": "targetSystem",
    "initiatedby": "initiatedBy",
}
_DYNAMIC = {"provisioningStatusInfo", "provisioningSteps", "modifiedProperties", "servicePrincipal",
            "sourceIdentity", "targetIdentity", "targetSystem", "initiatedBy", "sourceSystem"}


def column_key(name: str) -> str:
    """A Log Analytics column name as a lookup key: lower case, without the portal's `` [UTC]``-style suffix."""
    return re.sub(r"\s*\[[^\]]*\]\s*$", "", name).strip().lower()


def is_log_analytics_row(record: dict) -> bool:
    return any(column_key(k) == "timegenerated" for k in record) and any(k.lower() == "id" for k in record)


def _json_text(value: object, column: str) -> object:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text[0] in "[{":
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise ShapeError(f"column {column} is not valid JSON ({exc})") from None
    return value


def from_log_analytics(row: dict) -> dict:
    """A Log Analytics ``AADProvisioningLogs`` row (``az monitor log-analytics query -o json``, a Logs API table
    row, a portal CSV line): columns renamed, nested columns parsed from their JSON text. ``ResultType``,
    ``ResultSignature`` and ``ResultDescription`` fill the status and error when the status column lacks them."""
    found: dict = {}
    envelope: dict = {"shape": "log-analytics"}
    for name, value in row.items():
        key = column_key(name)
        target = LOG_ANALYTICS_COLUMNS.get(key)
        if key == "sourcesystem":
            parsed = _json_text(value, name)
            if isinstance(parsed, dict):
                found["sourceSystem"] = parsed
            else:
                envelope[name] = value
            continue
        if target is None:
            envelope[name] = value
            continue
        if target in _DYNAMIC:
            value = _json_text(value, name)
        elif value == "":
            value = None
        if target == "activityDateTime":
            value = parse_time(value)
        elif target == "durationInMilliseconds" and isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        if value is not None:
            found[target] = value
    order = [*LOG_ANALYTICS_COLUMNS.values(), "sourceSystem"]  # the Graph event's order, whatever the columns'
    event = canonical({k: found[k] for k in sorted(found, key=order.index)})
    result_type = next((v for k, v in envelope.items() if column_key(k) == "resulttype"), None)
    status = event.get("provisioningStatusInfo")
    if not isinstance(status, dict):
        status = event["provisioningStatusInfo"] = {}
    if not status.get("status") and isinstance(result_type, str) and result_type:
        status["status"] = result_type[:1].lower() + result_type[1:]
    if status.get("status") == "failure" and not status.get("errorInformation"):
        code = next((v for k, v in envelope.items() if column_key(k) == "resultsignature"), None)
        reason = next((v for k, v in envelope.items() if column_key(k) == "resultdescription"), None)
        if code or reason:
            status["errorInformation"] = {"errorCode": code or None, "reason": reason or None}
    event[ENVELOPE_KEY] = envelope
    return event


def table_rows(table: dict) -> tuple[list[str], list]:
    """A Logs API table (``{"name", "columns": [{"name", "type"}], "rows": [[...]]}``, any key case): its column
    names and rows."""
    lower = {k.lower(): v for k, v in table.items()}
    columns = [c.get("name") or c.get("ColumnName") or c.get("columnName") if isinstance(c, dict) else str(c)
               for c in lower.get("columns") or []]
    return [str(c) for c in columns], lower.get("rows") or []


def to_event(record: object) -> dict:
    """The Graph event a record holds, whatever its wrapper; ``record`` itself when it already is one (the fast
    path: nothing copied). Raises :class:`ShapeError` for a record a too-shallow ``ConvertTo-Json`` cut."""
    if not isinstance(record, dict):
        raise ShapeError(f"not a JSON object ({type(record).__name__})")
    if isinstance(record.get("id"), str) and "activityDateTime" in record and not needs_canonical(record):
        return record
    if any(k.lower() == "properties" and isinstance(v, dict) for k, v in record.items()):
        event = from_diagnostic(record)
    elif is_log_analytics_row(record):
        event = from_log_analytics(record)
    elif any(k.lower() == "category" for k in record) and not any(k.lower() == "id" for k in record):
        raise ShapeError("an Azure Monitor record without \"properties\" (the provisioning event): nothing to load")
    else:
        event = canonical(record)
        if isinstance(event.get("activityDateTime"), str):
            event["activityDateTime"] = parse_time(event["activityDateTime"])
    cut = depth_cut(event)
    if cut:
        raise ShapeError(f"{cut}: {DEPTH_FIX}")
    return event
