"""A minimal real Streamlit client: one WebSocket session per call, the way a browser tab opens the app.

It speaks Streamlit's own protocol (protobuf BackMsg/ForwardMsg over ``/_stcore/stream``): connect, ask for a
script run of a page with a query string, wait for the server's "script finished" message, disconnect. Much
lighter than a browser page, so a test can open hundreds of sessions on a busy machine.
"""

from __future__ import annotations

import asyncio

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg


async def _page_load(ws_url: str, query_string: str, page_name: str, timeout: float,
                     session_id: str) -> list[ForwardMsg]:
    import websockets

    messages: list[ForwardMsg] = []
    # Sec-WebSocket-Protocol carries (subprotocol, XSRF token, session to resume), as Streamlit's frontend sends it
    protocols = ["streamlit", "no-xsrf-token", session_id] if session_id else ["streamlit"]
    async with websockets.connect(ws_url, subprotocols=protocols, max_size=None, open_timeout=timeout) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = query_string
        msg.rerun_script.page_name = page_name
        await ws.send(msg.SerializeToString())
        async with asyncio.timeout(timeout):
            while True:
                fwd = ForwardMsg()
                fwd.ParseFromString(await ws.recv())
                messages.append(fwd)
                if fwd.WhichOneof("type") == "script_finished":
                    return messages


def page_load(base_url: str, query_string: str = "", page_name: str = "", timeout: float = 120,
              session_id: str = "") -> list[ForwardMsg]:
    """One new session (or, with ``session_id``, a reconnect to that one): run the app (``page_name``: a page's
    url path, "" for the default page) with ``query_string`` until the script run finished; returns the
    ForwardMsgs the server sent."""
    ws_url = base_url.replace("http://", "ws://", 1).rstrip("/") + "/_stcore/stream"
    return asyncio.run(_page_load(ws_url, query_string, page_name, timeout, session_id))


def session_id(messages: list[ForwardMsg]) -> str:
    """The session id the server gave in its first new_session message."""
    return next(m.new_session.initialize.session_id for m in messages if m.WhichOneof("type") == "new_session")


def exceptions(messages: list[ForwardMsg]) -> list[str]:
    """The messages of the exception elements a run drew (a script error shown on the page)."""
    return [m.delta.new_element.exception.message for m in messages
            if m.WhichOneof("type") == "delta" and m.delta.new_element.WhichOneof("type") == "exception"]
