"""Workaround (issue 27): close the script event loop of a disconnected Streamlit session (serve.py installs it).

Checked against Streamlit 1.67.0. Each ``AppSession`` owns an asyncio event loop for its script thread
(``AppSession._script_event_loop``: an epoll fd and a socket pair, 3 fds). When a browser tab goes away,
``Runtime.disconnect_session`` does not shut the session down: it parks it in ``MemorySessionStorage`` (up to 128
sessions for ``server.disconnectedSessionTTL``, 120 s) so the tab can reconnect, with its loop still open; a session
dropped from that storage later is never shut down (the storage has no removal hook), so its loop is closed only if
and when the garbage collector finds the session. Every page view thus held 3 more fds for minutes (~380 fds after
128 quick page views in our tests, and the issue saw EMFILE at the default limit of 1,024). A bare hello-world app
does the same; no config option changes it (a smaller ``disconnectedSessionTTL`` only shortens the window and
breaks reconnects).

A parked session runs nothing and its session-scoped caches were already cleared at the disconnect, so its loop has
no users: :func:`install` wraps the public ``Runtime.disconnect_session`` to close that loop with Streamlit's own
``_close_script_event_loop`` once no script runner is active (retried on the server's loop while a run is still
unwinding), and ``Runtime.connect_session`` to give a resumed session a new loop before its next run (Streamlit
would do it too, with a warning in the log). Private names touched: ``AppSession._script_event_loop``,
``AppSession._scriptrunner``, ``streamlit.runtime.app_session._close_script_event_loop``. When any of them is
missing (another Streamlit version), :func:`install` does nothing and says so; re-check this module (and whether
upstream fixed the leak, so it can go) when upgrading Streamlit.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("provlens.session_loops")

RETRY_S = 2.0  # a script run still unwinding at the disconnect: look again after this long
RETRIES = 30
_INSTALLED = "_provlens_closes_parked_loops"


def _internals():
    """Streamlit's pieces this workaround needs, or None when this Streamlit lacks any of them."""
    try:
        from streamlit.runtime import Runtime
        from streamlit.runtime.app_session import AppSession, _close_script_event_loop
    except ImportError:
        return None
    needed = ("disconnect_session", "connect_session", "get_app_session", "is_active_session")
    if not all(callable(getattr(Runtime, name, None)) for name in needed):
        return None
    return Runtime, AppSession, _close_script_event_loop


def _loop(session) -> asyncio.AbstractEventLoop | None:
    loop = getattr(session, "_script_event_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


def install() -> bool:
    """Patch ``Runtime`` once per process; returns whether the workaround is active."""
    internals = _internals()
    if internals is None:
        log.warning("provlens: Streamlit's session internals changed: parked sessions keep their event loops open")
        return False
    runtime_cls, _app_session, close_loop = internals
    if getattr(runtime_cls, _INSTALLED, False):
        return True
    disconnect, connect = runtime_cls.disconnect_session, runtime_cls.connect_session

    def release(runtime, session_id: str, session, tries: int = RETRIES) -> None:
        loop = _loop(session)
        if loop is None or loop.is_closed() or runtime.is_active_session(session_id):
            return  # already closed (shut down), or the tab reconnected
        if getattr(session, "_scriptrunner", None) is not None or loop.is_running():
            if tries > 0:  # the run is still unwinding; the server's own loop looks again later
                asyncio.get_running_loop().call_later(RETRY_S, release, runtime, session_id, session, tries - 1)
            return
        try:
            close_loop(loop)
        except Exception:  # noqa: BLE001 - never break a disconnect over this
            log.exception("provlens: could not close a parked session's event loop")

    def disconnect_session(self, session_id, *args, **kwargs):
        session = self.get_app_session(session_id)
        result = disconnect(self, session_id, *args, **kwargs)
        if session is not None and not self.is_active_session(session_id):
            release(self, session_id, session)
        return result

    def connect_session(self, *args, **kwargs):
        session_id = connect(self, *args, **kwargs)
        session = self.get_app_session(session_id)
        loop = _loop(session)
        if loop is not None and loop.is_closed():  # a parked session came back: a new loop for its next run
            session._script_event_loop = asyncio.new_event_loop()
        return session_id

    runtime_cls.disconnect_session = disconnect_session
    runtime_cls.connect_session = connect_session
    setattr(runtime_cls, _INSTALLED, True)
    return True
