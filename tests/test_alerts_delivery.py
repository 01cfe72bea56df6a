"""Alert delivery through Apprise to real local servers (issue 24): the payload each kind of target receives (Teams
Workflows over HTTPS, Slack through a CONNECT proxy standing in for hooks.slack.com, a generic JSON webhook, email
to aiosmtpd), a webhook answering 500 then 200 (retried with backoff, delivered once), ``--test`` messages, and the
targets' secrets (webhook URL parts, SMTP password) absent from the database file, the process's output and logs,
and the page queries that show the history."""

from __future__ import annotations

import html
import logging
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from ingest import exitcodes
from ingest.alerts import delivery, notify
from ingest.alerts.model import Alert
from tests.alert_receivers import Receiver, SmtpReceiver, self_signed

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)
WORKFLOW_ID, WORKFLOW_SIG = "643e69f83c8944438d68119179a10a64", "KODuebWbDGYFr0z0eu-6Rj8aUKz7108W3wrNJZxFE5A"
SLACK_TOKENS = ("T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7")
SMTP_USER, SMTP_PASSWORD = "provlens-mailer", "Sm7p-pa55word-Zq9"
JSON_TOKEN = "hook-9f3a1c2e7d5b"


def quarantine() -> Alert:
    return Alert(rule="quarantine", severity="critical", key="sp-1/job-1", app="Leapsome", job="job-1",
                 first_seen=T0 - timedelta(hours=2), last_seen=T0,
                 message="Leapsome is in quarantine (EncounteredQuarantineException) since 2026-12-07 07:00 UTC",
                 action="Check the SCIM endpoint's credentials, then restart provisioning", identities=42,
                 url="/cycles?app=sp-1&since=2026-12-06")


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[str, str]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def servers(cert, monkeypatch):
    """Teams Workflows (HTTPS), Slack (proxy), JSON webhook, SMTP: each a real server, each target's URL in its
    environment variable."""
    with Receiver(tls=cert) as teams, Receiver(tls=cert, proxy=True) as slack, Receiver() as hook, \
            SmtpReceiver(SMTP_USER, SMTP_PASSWORD) as smtp:
        monkeypatch.setenv("PROVLENS_TEAMS_WEBHOOK", f"workflows://127.0.0.1:{teams.port}/{WORKFLOW_ID}/"
                                                     f"{WORKFLOW_SIG}/?verify=no")
        monkeypatch.setenv("PROVLENS_SLACK_WEBHOOK", "slack://{}/{}/{}/?verify=no".format(*SLACK_TOKENS))
        monkeypatch.setenv("PROVLENS_JSON_WEBHOOK", f"json://127.0.0.1:{hook.port}/alerts/{JSON_TOKEN}")
        monkeypatch.setenv("PROVLENS_SMTP_URL", f"mailto://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{smtp.port}"
                                                "?from=provlens@example.com&to=oncall@example.com")
        # requests reaches hooks.slack.com through the proxy; every other target is on 127.0.0.1
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{slack.port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.setenv("PROVLENS_PUBLIC_URL", "https://provlens.example.org")
        yield {"teams": teams, "slack": slack, "hook": hook, "smtp": smtp}


CONFIG = {"alerts": {"public_url": "https://ignored.example.org", "retry_wait_seconds": 0.2, "targets": [
    {"name": "teams", "url_env": "PROVLENS_TEAMS_WEBHOOK"},
    {"name": "slack", "url_env": "PROVLENS_SLACK_WEBHOOK"},
    {"name": "hook", "url_env": "PROVLENS_JSON_WEBHOOK"},
    {"name": "email", "url_env": "PROVLENS_SMTP_URL"},
]}}
LINK = "https://provlens.example.org/cycles?app=sp-1&since=2026-12-06"  # PROVLENS_PUBLIC_URL wins over the file


def _says_it_all(text: str, alert: Alert) -> None:
    """What, since when, how many identities, the recommended action and the link."""
    assert alert.message in text and "2026-12-07 07:00 UTC" in text and "42" in text and alert.action in text
    assert LINK in text


def test_each_target_receives_its_payload(tmp_path, servers):
    alert = quarantine()
    assert notify.process(tmp_path / "store.duckdb", [alert], now=T0, config=CONFIG) == exitcodes.OK

    # Teams through a Workflows (Power Automate) webhook: an Adaptive Card message, the workflow id in the path and
    # the signature in the query, as Microsoft's webhook URL has them.
    [teams] = servers["teams"].requests
    assert teams.path == f"/workflows/{WORKFLOW_ID}/triggers/manual/paths/invoke"
    assert teams.query["sig"] == [WORKFLOW_SIG] and teams.query["sp"] == ["/triggers/manual/run"]
    card = teams.json()
    assert card["type"] == "message"
    [attachment] = card["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert attachment["content"]["type"] == "AdaptiveCard"
    blocks = {b.get("id"): b["text"] for b in attachment["content"]["body"] if b["type"] == "TextBlock"}
    assert blocks["title"] == "provlens: [CRITICAL] quarantine on Leapsome"
    _says_it_all(blocks["body"], alert)

    # Slack incoming webhook: POST /services/T/B/X on hooks.slack.com, an attachment with title and mrkdwn text.
    [slack] = servers["slack"].requests
    assert slack.host == "hooks.slack.com" and slack.path == "/services/" + "/".join(SLACK_TOKENS)
    payload = slack.json()
    [att] = payload["attachments"]
    assert att["title"] == "provlens: [CRITICAL] quarantine on Leapsome"
    # Slack's mrkdwn: *bold*, and &, <, > escaped as entities (Slack's own rule for message text)
    _says_it_all(html.unescape(att["text"].replace("*", "")), alert)

    # Generic JSON webhook: Apprise's JSON object.
    [hook] = servers["hook"].requests
    assert hook.path == f"/alerts/{JSON_TOKEN}" and hook.headers["Content-Type"] == "application/json"
    body = hook.json()
    assert body["version"] == "1.0" and body["type"] == "failure"
    assert body["title"] == "provlens: [CRITICAL] quarantine on Leapsome"
    _says_it_all(body["message"], alert)

    # Email over SMTP with a login.
    smtp = servers["smtp"]
    assert smtp.logins == [(SMTP_USER, True)]
    [mail] = smtp.messages
    assert mail["Subject"] == "provlens: [CRITICAL] quarantine on Leapsome" and mail["To"] == "oncall@example.com"
    _says_it_all(mail.get_body(preferencelist=("plain",)).get_content(), alert)


def test_power_automate_url_as_copied_from_the_workflow(tmp_path, cert, monkeypatch):
    """The HTTPS URL a Workflows trigger shows is accepted as it is (Apprise reads it natively)."""
    with Receiver(tls=cert) as teams:
        monkeypatch.setenv("PROVLENS_TEAMS_WEBHOOK", f"https://127.0.0.1:{teams.port}/powerautomate/automations/"
                                                     f"direct/workflows/{WORKFLOW_ID}/triggers/manual/paths/invoke?"
                                                     "api-version=2022-03-01-preview&sp=%2Ftriggers%2Fmanual%2Frun"
                                                     f"&sv=1.0&sig={WORKFLOW_SIG}&verify=no")
        cfg = {"alerts": {"targets": [{"name": "teams", "url_env": "PROVLENS_TEAMS_WEBHOOK"}]}}
        assert notify.send_test(cfg, "teams") == exitcodes.OK
        [req] = teams.requests
        assert req.path == f"/powerautomate/automations/direct/workflows/{WORKFLOW_ID}/triggers/manual/paths/invoke"
        assert req.query["sig"] == [WORKFLOW_SIG] and req.query["api-version"] == ["2022-03-01-preview"]
        assert req.json()["attachments"][0]["content"]["type"] == "AdaptiveCard"


def test_500_then_200_is_retried_with_backoff_and_delivered_once(tmp_path, monkeypatch):
    db = tmp_path / "store.duckdb"
    with Receiver(statuses=[500]) as hook:
        monkeypatch.setenv("PROVLENS_JSON_WEBHOOK", f"json://127.0.0.1:{hook.port}/")
        cfg = {"alerts": {"retry_wait_seconds": 0.3, "targets": [{"name": "hook", "url_env": "PROVLENS_JSON_WEBHOOK"}]}}
        started = time.monotonic()
        assert notify.process(db, [quarantine()], now=T0, config=cfg) == exitcodes.OK
        elapsed = time.monotonic() - started
        assert len(hook.requests) == 2 and hook.requests[0].body == hook.requests[1].body
        assert elapsed >= 0.3  # the backoff waited between the two tries
        with duckdb.connect(str(db), read_only=True) as con:
            # both tries recorded: sent at the second, the first one's refusal kept as the last error
            assert con.execute("SELECT status, attempts, last_error LIKE '%error=500%' FROM alert_deliveries") \
                .fetchall() == [("sent", 2, True)]
        assert notify.process(db, [quarantine()], now=T0 + timedelta(minutes=40), config=cfg) == exitcodes.OK
        assert len(hook.requests) == 2  # delivered once


def test_send_test_message(servers, capfd):
    for name in ("hook", "email"):
        assert notify.send_test(CONFIG, name) == exitcodes.OK
    [hook] = servers["hook"].requests
    assert hook.json()["title"] == "provlens: test message" and "https://provlens.example.org/alerts" in \
        hook.json()["message"]
    assert [m["Subject"] for m in servers["smtp"].messages] == ["provlens: test message"]
    assert notify.send_test(CONFIG, "pager") == exitcodes.USAGE
    assert "no alert target named 'pager'" in capfd.readouterr().err


def test_send_test_to_an_unreachable_target(monkeypatch, capfd):
    monkeypatch.setenv("PROVLENS_JSON_WEBHOOK", f"json://127.0.0.1:9/{JSON_TOKEN}")
    cfg = {"alerts": {"retry_wait_seconds": 0, "delivery_attempts": 2,
                      "targets": [{"name": "hook", "url_env": "PROVLENS_JSON_WEBHOOK"}]}}
    assert notify.send_test(cfg, "hook") == exitcodes.UNREACHABLE
    err = capfd.readouterr().err
    assert "not delivered after 2 tries" in err and JSON_TOKEN not in err


def _secrets() -> list[str]:
    return [WORKFLOW_ID, WORKFLOW_SIG, SLACK_TOKENS[2], SMTP_PASSWORD, JSON_TOKEN]


def test_secrets_never_reach_the_store_output_or_logs(tmp_path, servers, monkeypatch, capfd):
    """Deliveries that succeed and deliveries that fail (each target's server refusing), with Apprise's logger and
    the root logger at DEBUG: no part of a target's secret URL in the database file, the output, any log record, or
    what the Alerts page's queries return."""
    from queries.db import run as run_query
    from queries.export import csv_bytes_from_frame

    logged: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            logged.append(self.format(record))

    keep = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(keep)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    monkeypatch.setattr(logging.getLogger("apprise"), "level", logging.DEBUG)
    try:
        db = tmp_path / "store.duckdb"
        for name in ("teams", "slack", "hook"):
            servers[name].state.statuses.extend([500] * 3)
        cfg = {"alerts": {**CONFIG["alerts"], "retry_wait_seconds": 0, "delivery_attempts": 3}}
        # The SMTP target with a wrong password fails too (the server refuses the login).
        monkeypatch.setenv("PROVLENS_SMTP_URL", f"mailto://{SMTP_USER}:{SMTP_PASSWORD}x@127.0.0.1:"
                                                f"{servers['smtp'].port}?from=provlens@example.com&to=a@example.com")
        assert notify.process(db, [quarantine()], now=T0, config=cfg) == exitcodes.PARTIAL
        # the server refused the password at each of the 3 tries (smtplib tries PLAIN, then LOGIN)
        logins = servers["smtp"].logins
        assert set(logins) == {(SMTP_USER, False)} and len(logins) >= 3
        monkeypatch.setenv("PROVLENS_SMTP_URL", f"mailto://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:"
                                                f"{servers['smtp'].port}?from=provlens@example.com&to=a@example.com")
        assert notify.process(db, [], now=T0 + timedelta(hours=1), config=cfg) == exitcodes.OK
        assert notify.send_test(cfg, "teams") == exitcodes.OK
    finally:
        root.removeHandler(keep)
        root.setLevel(old_level)
    out = capfd.readouterr()
    with duckdb.connect(str(db), read_only=True) as con:
        statuses = con.execute("SELECT status, count(*) FROM alert_deliveries GROUP BY ALL ORDER BY 1").fetchall()
        errors = [r[0] for r in con.execute("SELECT last_error FROM alert_deliveries WHERE attempts > 1").fetchall()]
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'main' AND table_type = 'BASE TABLE'").fetchall()]
        assert {"alerts", "alert_deliveries"} <= set(tables)
        for table in tables:  # every stored value as text (a compressed column could hide one from the byte search)
            for secret in _secrets():
                hits = con.execute(f'SELECT count(*) FROM "{table}" t WHERE contains(t::VARCHAR, ?)',
                                   [secret]).fetchone()[0]
                assert hits == 0, f"a target's secret is stored in {table}"
    assert statuses == [("sent", 8)]  # 4 fired (after the failures) + 4 resolved
    assert all(errors) and len(errors) == 4  # each target failed at first, and its error was kept
    pages = [run_query(str(db), name) for name in ("alerts_active", "alert_history", "alert_deliveries")]
    stored = "".join(p.read_bytes().decode("latin-1") for p in (Path(db), Path(f"{db}.wal")) if p.exists())
    # the file's bytes show stored text as it is (so a secret stored would show too)
    assert quarantine().action in stored and errors[0] in stored
    texts = {
        "database file": stored,
        "stdout": out.out, "stderr": out.err, "log records": "\n".join(logged),
        # the Alerts page's tables as their CSV downloads (the exports' encoder)
        "page CSV downloads": "\n".join(csv_bytes_from_frame(frame).decode() for frame in pages),
    }
    assert logged  # the logging capture worked (something was logged)
    for where, text in texts.items():
        for secret in _secrets():
            assert secret not in text, f"a target's secret is in the {where}"


def test_redact_removes_every_part_of_a_secret_url():
    url = f"mailto://{SMTP_USER}:{SMTP_PASSWORD}@smtp.example.com?to=a@example.com"
    text = f"login failed for {SMTP_USER}:{SMTP_PASSWORD} at {url} (password={SMTP_PASSWORD})"
    assert SMTP_PASSWORD not in delivery.redact(text, url) and url not in delivery.redact(text, url)
    hook = f"https://prod-1.westeurope.logic.azure.com/workflows/{WORKFLOW_ID}/triggers/manual/paths/invoke?sig={WORKFLOW_SIG}"
    text = f"POST {hook} failed; sig%3D{WORKFLOW_SIG}"
    cleaned = delivery.redact(text, hook)
    assert WORKFLOW_SIG not in cleaned and WORKFLOW_ID not in cleaned and "failed" in cleaned
