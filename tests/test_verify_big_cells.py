"""``queries verify`` accepts an untouched export whose cells are bigger than Python's default csv field limit
(128 KiB; issue 27: verify failed a file export had just written)."""

from __future__ import annotations

from tests.conftest import run_cli, store_from_events


def test_verify_accepts_an_export_with_a_cell_over_128_kib(tmp_path):
    reason = "The SCIM endpoint answered: " + "x" * (300 * 1024)
    events = [{"id": "big", "activityDateTime": "2026-10-01T00:00:00Z",
               "provisioningStatusInfo": {"status": "failure", "errorInformation": {"reason": reason}}},
              {"id": "small", "activityDateTime": "2026-10-01T01:00:00Z"}]
    db = store_from_events(tmp_path, "s", events)
    out = tmp_path / "events.csv"
    run_cli("queries", "export", "events", "--db", db, "--out", str(out), check=True)
    assert reason in out.read_text(encoding="utf-8")
    proc = run_cli("queries", "verify", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # and it still catches a change
    data = bytearray(out.read_bytes())
    data[-3] = ord("Z") if data[-3] != ord("Z") else ord("Y")
    out.write_bytes(bytes(data))
    assert run_cli("queries", "verify", str(out)).returncode != 0
