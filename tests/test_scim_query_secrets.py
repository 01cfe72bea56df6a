"""Secret query parameters of a SCIM request (``?access_token=...``, ``code``, ``sig``, ...) are redacted before
the row is stored: in the ``query`` column, the raw line and every export (issue 27)."""

from __future__ import annotations

import json

import duckdb

from tests.conftest import run_cli

SECRETS = {"access_token": "AT-9f8e7d6c5b4a", "code": "CODE-0a1b2c3d", "client_secret": "CS-77aa88bb",
           "id_token": "IDT-eyJhbGciOi", "refresh_token": "RT-5544332211", "password": "PW-hunter2hunter2",
           "sig": "SIG-abcdef123456", "signature": "SIGN-fedcba654321", "token": "TOK-1234567890",
           "x_api_key": "KEY-deadbeef00"}


def test_secret_query_parameters_are_redacted_before_storing(tmp_path):
    lines = []
    for i, (name, value) in enumerate(SECRETS.items()):
        query = f"filter=userName%20eq%20%22user{i}%40contoso.com%22&{name}={value}&count=10"
        rec = {"ts": "2026-10-01T00:00:00Z", "request_id": f"r{i}", "method": "GET", "path": "/scim/Users",
               "status": 200}
        if i % 2:
            rec["query"] = query
        else:  # the query inline in the path, and a URL field kept only in the raw line
            rec["path"] = "/scim/Users?" + query
            rec["url"] = "https://scim.example.com/scim/Users?" + query
        lines.append(json.dumps(rec))
    audit = tmp_path / "audit.jsonl"
    audit.write_text("\n".join(lines) + "\n", encoding="utf-8")
    db = tmp_path / "s.duckdb"
    run_cli("ingest", "scim", "--db", str(db), "-q", "--no-correlate", str(audit), check=True)

    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT request_id, query, raw::VARCHAR, user_name FROM scim_requests ORDER BY request_id")\
        .fetchall()
    con.close()
    assert len(rows) == len(SECRETS)
    for request_id, query, raw, user_name in rows:
        name = list(SECRETS)[int(request_id[1:])]
        assert f"{name}=REDACTED" in query and "count=10" in query, query
        assert user_name == f"user{request_id[1:]}@contoso.com"  # derived from the filter as sent
        assert not any(v in raw for v in SECRETS.values()), raw
    out = tmp_path / "requests.csv"
    run_cli("queries", "export", "scim-requests", "--db", str(db), "--out", str(out), check=True)
    text = out.read_text(encoding="utf-8")
    assert "REDACTED" in text and not any(v in text for v in SECRETS.values())
    data = db.read_bytes()
    assert not any(v.encode() in data for v in SECRETS.values())
