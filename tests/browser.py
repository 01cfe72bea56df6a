"""What the browser tests share: waiting on the app's own state instead of on the network or a clock.

A Streamlit page is done when its script run has finished (``stApp``'s ``data-test-script-state`` is
``notRunning``), the WebSocket is connected and the page's own element (its title) is there. Playwright's
``wait_for_load_state("networkidle")`` waits for 500 ms without requests instead, which a page that keeps a
WebSocket open and refreshes a fragment every 30 s may never give on a busy machine (it timed out at 30 s in a
clean-clone CI run). Every wait here has one generous overall budget (``BUDGET_S``) and no fixed sleep.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

BUDGET_S = 120.0  # overall budget of one wait: generous for a busy 2-core machine; a healthy page takes ~1 s

# True when the last script run finished with the session connected and, if given, an h1 holds ``title``.
_APP_READY_JS = """(title) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.dataset.testScriptState !== "notRunning" || app.dataset.testConnectionState !== "CONNECTED") {
    return false;
  }
  if (!title) return true;
  return [...document.querySelectorAll("h1")].some((h) => h.textContent.includes(title));
}"""


def wait_for_app(page, title: str | None = None, budget_s: float = BUDGET_S) -> None:
    """Until the page's script run has finished (connected, not running) and an h1 holds ``title``."""
    page.wait_for_function(_APP_READY_JS, arg=title, timeout=budget_s * 1000, polling=100)


@contextmanager
def chromium_context(profile_dir, **options) -> Iterator:
    """Debian's headless Chromium (never a downloaded browser) with a fresh profile in ``profile_dir``, a
    1440x1000 window unless ``options`` say otherwise, and every wait on the one budget (``BUDGET_S``)."""
    from playwright.sync_api import sync_playwright

    from bench.dashboard import ARGS, CHROMIUM

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile_dir), executable_path=CHROMIUM, headless=True, args=ARGS,
            **{"viewport": {"width": 1440, "height": 1000}, **options})
        context.set_default_timeout(BUDGET_S * 1000)
        try:
            yield context
        finally:
            context.close()
