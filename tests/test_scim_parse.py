"""The SCIM line parser: derivations (unit) and property-based robustness (hypothesis): random bytes and
random JSON never crash it, and a valid line is never dropped, whatever surrounds it."""

from __future__ import annotations

import io
import json
import os
from collections import Counter

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.scim.filestate import iter_lines
from ingest.scim.ingest import ScimOutcome, _Batch, _LineReader
from ingest.scim.mapping import DEFAULT_MAPPING, OUR_FIELDS
from ingest.scim.parse import (
    PLACEHOLDER_IDS,
    LineRejected,
    clean_line,
    decode_json_line,
    filter_values,
    normalise,
    parse_json_line,
)


def _rec(**over) -> dict:
    base = {"ts": "2026-11-02T09:00:02.010Z", "request_id": "r-1", "method": "GET", "path": "/scim/v2/Users",
            "status": 200}
    base.update(over)
    return base


def test_derivations_fill_what_the_line_lacks():
    r = normalise(_rec(query='filter=userName eq "Jane@Acme.com"'))
    assert (r["operation"], r["user_name"], r["user_name_lower"], r["is_probe"]) == (
        "user.search", "Jane@Acme.com", "jane@acme.com", False)
    r = normalise(_rec(query="filter=userName%20eq%20%228d0f6a52-3f0e-4c57-9d7b-0b1f4e2f8c11%22"))
    assert r["is_probe"] and r["operation"] == "probe"
    r = normalise(_rec(method="PATCH", path="/scim/v2/Users/u_1", active_after="False"))
    assert (r["operation"], r["resource_id"], r["resource_type"], r["active_after"]) == (
        "user.deactivate", "u_1", "User", False)
    r = normalise(_rec(method="PATCH", path="/scim/v2/Users/u_1",
                       body={"Operations": [{"op": "Replace", "path": "active", "value": "True"}]}))
    assert (r["operation"], r["active_after"]) == ("user.reactivate", True)
    r = normalise(_rec(method="POST", status="201", emails=[{"type": "Work", "value": "ann@Contoso.com"}],
                       body={"userName": "ann@contoso.com", "externalId": "e-1"}, response_body={"id": "u_9"}))
    assert (r["operation"], r["status"], r["user_name"], r["external_id"], r["resource_id"]) == (
        "user.create", 201, "ann@contoso.com", "e-1", "u_9")
    assert (r["email_domains"], r["email_types"]) == (["contoso.com"], ["work"])
    r = normalise(_rec(email_domains=["max@gmail.com"], path="/scim/v2/Schemas"))
    assert r["email_domains"] == ["gmail.com"] and r["operation"] == "discovery"
    r = normalise(_rec(path="/scim/v2/Groups/g1", method="DELETE", status=204))
    assert r["operation"] == "group.delete"
    r = normalise(_rec(credential_id="Bearer eyJhbGciOiJIUzI1NiJ9.secret"))
    assert r["credential_id"].startswith("sha256:") and "secret" not in r["credential_id"]
    assert normalise(_rec(ts="2026-11-02T10:00:02+01:00"))["ts"] == "2026-11-02T09:00:02.000000Z"
    assert filter_values('filter=externalId eq "e-2" and userName eq "x@y.z"') == {"externalid": "e-2",
                                                                                  "username": "x@y.z"}


def test_wrong_types_and_missing_fields_are_rejected_with_reasons():
    cases = {
        "wrong type for 'status'": _rec(status="abc"),
        "wrong type for 'ts'": _rec(ts="not a time"),
        "missing required field 'request_id'": {k: v for k, v in _rec().items() if k != "request_id"},
        "wrong type for 'active_after'": _rec(active_after="maybe"),
        "wrong type for 'email_domains'": _rec(email_domains=[1, 2]),
        "wrong type for 'user_name'": _rec(user_name={"a": 1}),
    }
    for reason, obj in cases.items():
        try:
            normalise(obj)
        except LineRejected as exc:
            assert str(exc).startswith(reason), (reason, str(exc))
        else:
            raise AssertionError(f"accepted {obj}")
    for line, reason in ((b'{"ts":', "invalid JSON"), (b"[1,2]", "not a JSON object"),
                         (b'{"a":"\xff"}', "invalid UTF-8")):
        try:
            decode_json_line(line)
        except LineRejected as exc:
            assert str(exc).startswith(reason)
        else:
            raise AssertionError(line)


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
_scalar = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _text
_json_value = st.recursive(_scalar,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
                           max_leaves=12)
_valid = st.fixed_dictionaries({
    "ts": st.datetimes(min_value=__import__("datetime").datetime(2000, 1, 1),
                       max_value=__import__("datetime").datetime(2100, 1, 1)).map(lambda t: t.isoformat() + "Z"),
    "request_id": st.text(alphabet="abcdef0123456789-", min_size=1, max_size=24),
    "method": st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
    "path": st.sampled_from(["/scim/v2/Users", "/scim/v2/Users/u_1", "/scim/v2/Groups", "/Schemas", "/x"]),
    "status": st.integers(100, 599),
}, optional={
    "query": _text, "user_name": _text, "duration_ms": st.floats(0, 1e6), "active_after": st.booleans(),
    "email_domains": st.lists(_text, max_size=3), "extra": _json_value,
})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_parser(data):
    try:
        parse_json_line(clean_line(data), DEFAULT_MAPPING)
    except LineRejected:
        pass


@settings(max_examples=300, deadline=None)
@given(_json_value)
def test_random_json_never_crashes_the_parser(value):
    try:
        parse_json_line(json.dumps(value).encode())
    except LineRejected:
        pass


@settings(max_examples=300, deadline=None)
@given(_valid, st.dictionaries(st.sampled_from(OUR_FIELDS), _json_value, max_size=5))
def test_random_field_values_are_typed_or_rejected(record, noise):
    """Known fields with random JSON values: a typed record or a reason, never an exception."""
    try:
        out = normalise({**record, **noise})
    except LineRejected as exc:
        assert str(exc)
    else:
        assert isinstance(out["status"], int) and out["ts"].endswith("Z") and out["request_id"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_valid.map(lambda r: ("ok", r)), st.binary(max_size=80).map(lambda b: ("junk", b))),
                max_size=25),
       st.booleans())
def test_valid_lines_are_never_dropped(items, crlf):
    """Every valid line among random junk lines is staged, with its request id, exactly once."""
    lines, want = [], []
    for kind, item in items:
        if kind == "ok":
            lines.append(json.dumps(item).encode())
            rid = item["request_id"]  # '-' is a placeholder: keyed by the line's position instead
            want.append("(position)" if rid.strip() in PLACEHOLDER_IDS else rid)
        else:
            lines.append(item.replace(b"\n", b" ").replace(b"\r", b" "))
    data = b"".join(line + (b"\r\n" if crlf else b"\n") for line in lines)
    batch = _Batch()
    try:
        header = None
        reader = _LineReader("json", "mem", DEFAULT_MAPPING, "0" * 16, ScimOutcome())
        for line in iter_lines(io.BytesIO(data), 0, 0):
            header = reader.one(line, batch, header)
        batch.fh.close()
        with open(batch.path, "rb") as fh:
            staged = [orjson.loads(x)["request_id"] for x in fh.read().splitlines()]
            staged = ["(position)" if k.startswith("line:0000000000000000:") else k for k in staged]
    finally:
        batch.discard()
    # A junk line could in theory be a complete valid record too: then it loads as well, never fewer.
    assert not Counter(want) - Counter(staged)
    assert not os.path.exists(batch.path)
