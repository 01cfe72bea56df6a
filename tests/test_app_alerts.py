"""AppTest of the Alerts page and the Overview's attention list (issue 24) on a store with alert history: the counts
equal plain SQL over the alert tables, each active alert is shown with its message, action and link to the
evidence, the history and notification tables hold every episode and notification; a store without alerts says so
and the Overview shows no attention list."""

from __future__ import annotations

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from ingest.store import Store
from tests import alert_store
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("alerts-app") / "store.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        alert_store.build(path, mp)
    return path


def _open(db, monkeypatch, page: str | None) -> AppTest:
    monkeypatch.setenv("PROVLENS_DB", str(db))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["range"] = "all"
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def _sql(db, sql: str):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def _boxes(at) -> list[str]:
    """The alert cards: "**rule** (severity) · what ..." (pages/alert_cards.py)."""
    return [el.value for el in [*at.error, *at.warning, *at.info] if el.value.startswith("**") and " · " in el.value]


def _evidence_links(at) -> list[str]:
    return [b.proto.url for b in at.get("link_button") if b.proto.label == "Open the evidence"]


def test_alerts_page(db, monkeypatch):
    at = _open(db, monkeypatch, "pages/alerts.py")
    metrics = {m.label: m.value for m in at.metric}
    [(active, critical, warning)] = _sql(db, "SELECT count(*), count(*) FILTER (WHERE severity = 'critical'), "
                                             "count(*) FILTER (WHERE severity = 'warning') FROM alerts "
                                             "WHERE resolved_at IS NULL")
    [(undelivered,)] = _sql(db, "SELECT count(*) FROM alert_deliveries WHERE status = 'pending'")
    assert metrics["Active alerts"] == str(active) and metrics["Critical"] == str(critical)
    assert metrics["Warning"] == str(warning) and metrics["Notifications not delivered yet"] == str(undelivered)

    boxes = _boxes(at)
    expected = _sql(db, "SELECT message, action, url FROM alerts WHERE resolved_at IS NULL")
    assert len(boxes) == len(expected) == 2
    for message, action, _url in expected:
        [box] = [b for b in boxes if message.split(":")[0] in b]
        assert action in box
    assert sorted(_evidence_links(at)) == sorted(url.lstrip("/") for _, _, url in expected)  # relative to the page

    history = next(df.value for df in at.dataframe if "resolved_at" in df.value.columns)
    episodes = _sql(db, "SELECT episode_id, resolved_at IS NULL FROM alerts ORDER BY episode_id")
    assert sorted(history["episode_id"]) == [e for e, _ in episodes]
    assert sorted(history.loc[history["state"] == "active", "episode_id"]) == [e for e, open_ in episodes if open_]
    assert set(history["url"]) == {r[0] for r in _sql(db, "SELECT url FROM alerts")}
    notifications = next(df.value for df in at.dataframe if "delivery_id" in df.value.columns)
    assert sorted(notifications["delivery_id"]) == [r[0] for r in _sql(
        db, "SELECT delivery_id FROM alert_deliveries ORDER BY 1")]
    assert {b.label for b in at.get("download_button")} >= {"Download alert-history (CSV)",
                                                             "Download alert-notifications (CSV)"}


def test_overview_attention_list_shows_the_active_alerts(db, monkeypatch):
    at = _open(db, monkeypatch, None)
    [(active,)] = _sql(db, "SELECT count(*) FROM alerts WHERE resolved_at IS NULL")
    assert f"Needs attention ({active})" in [h.value for h in at.subheader]
    boxes = _boxes(at)
    assert sorted(b.split("**")[1] for b in boxes) == sorted(r[0] for r in _sql(
        db, "SELECT rule FROM alerts WHERE resolved_at IS NULL"))
    # the incidents that are over are listed apart (all time here: range=all)
    resolved = next(df.value for df in at.dataframe if "resolved_at" in df.value.columns)
    assert sorted(resolved["rule"]) == sorted(r[0] for r in _sql(
        db, "SELECT rule FROM alerts WHERE resolved_at IS NOT NULL"))


def test_no_alerts(tmp_path, monkeypatch):
    db = tmp_path / "empty.duckdb"
    Store.open(str(db)).close()
    at = _open(db, monkeypatch, "pages/alerts.py")
    assert "No active alert." in [s.value for s in at.success]
    assert "No alert has fired yet." in [m.value for m in at.markdown]
    at = _open(db, monkeypatch, None)
    assert not any(h.value.startswith("Needs attention") for h in at.subheader)
