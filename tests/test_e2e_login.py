"""End-to-end: with login configured, an anonymous visitor in real Chromium sees only the sign-in prompt:
no data, and no list of the app's internal modules in the sidebar (Streamlit lists ``pages/*.py`` until the
app calls ``st.navigation``). A broken secrets file shows the misconfiguration page, not the dashboard."""

from __future__ import annotations

import pytest

from bench.dashboard import ARGS as CHROMIUM_ARGS
from bench.dashboard import CHROMIUM, running_dashboard
from tests.test_security_login import GOOD_TOML

APP_STATE_IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
MODULE_NAMES = ("warmup", "html table", "charts", "common", "overview", "failures", "violations", "identity")


def _visible_text(base: str, profile) -> tuple[str, int]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                        args=CHROMIUM_ARGS)
        try:
            page = context.new_page()
            page.goto(base + "/", timeout=120_000)
            page.wait_for_selector(APP_STATE_IDLE, timeout=120_000)
            page.wait_for_selector("h1", timeout=120_000)
            return page.inner_text("body"), page.locator('[data-testid="stSidebarNav"]').count()
        finally:
            context.close()


@pytest.mark.parametrize("secrets,expect", [
    (GOOD_TOML, "Sign in with Microsoft"),
    (GOOD_TOML.replace("[auth]", "[Auth]"), "Login is misconfigured"),
])
def test_an_anonymous_visitor_sees_no_data_and_no_module_names(secrets, expect, demo_db, tmp_path):
    path = tmp_path / "secrets.toml"
    path.write_text(secrets, encoding="utf-8")
    with running_dashboard(str(demo_db), tmp_path / "server.log",
                           extra_args=("--secrets.files", str(path))) as (base, _proc):
        text, navs = _visible_text(base, tmp_path / "profile")
    assert expect in text
    assert navs == 0, text
    assert not [m for m in MODULE_NAMES if m in text.lower()], text
    assert "Recurring failures" not in text and "Sync cycles" not in text
