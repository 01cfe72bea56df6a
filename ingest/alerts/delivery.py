"""Sending one alert notification to one target through Apprise, with bounded retries (tenacity), and the words
of the message.

A target's Apprise URL is a secret (a Teams Workflows signature, a Slack token, an SMTP password): it is passed to
Apprise and nowhere else. Apprise's own log lines are kept out of the process's logs (its logger does not
propagate) and the error text kept for the outbox is cut from Apprise's warnings with every part of the URL that
could be secret replaced by ``[redacted]``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import apprise
from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_exponential, wait_none

from ingest.store import scrub

# Apprise logs request URLs (with the webhook signature) at debug level: never into the process's own logs.
logging.getLogger("apprise").propagate = False
# The loggers that see a target's URL while it is sent (urllib3 logs each request line, query included, at debug
# level): every record they make meanwhile has the URL's secret parts redacted (_redacted_logs).
_URL_LOGGERS = ("apprise", "urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry")

MAX_ERROR_CHARS = 300
_NOTIFY_TYPES = {"critical": apprise.NotifyType.FAILURE, "warning": apprise.NotifyType.WARNING,
                 "info": apprise.NotifyType.INFO}


@dataclass(frozen=True)
class Outcome:
    """What became of one delivery within one run: delivered or not, how many tries, the last error (redacted)."""

    ok: bool
    attempts: int
    error: str | None


def secret_parts(url: str) -> list[str]:
    """Every piece of an Apprise URL that could be secret, longest first: the URL itself, its user and password,
    its path segments and query values (webhook ids, signatures, tokens), each also %-encoded and decoded."""
    parts = {url}
    try:
        split = urlsplit(url)
        pieces = [split.username or "", split.password or "", split.netloc,
                  *split.path.split("/"), *(v for _, v in parse_qsl(split.query, keep_blank_values=True)),
                  split.query]
    except ValueError:
        pieces = []
    for piece in pieces:
        if len(piece) >= 4:
            parts.update({piece, unquote(piece), quote(piece, safe=""), quote(unquote(piece), safe="")})
    return sorted((p for p in parts if len(p) >= 4), key=len, reverse=True)


def redact(text: str, url: str) -> str:
    """``text`` with every secret part of ``url`` (and bearer/basic credentials, secret-named fields) redacted."""
    for part in secret_parts(url):
        text = text.replace(part, "[redacted]")
    return scrub(text)


class _Redact(logging.Filter):
    def __init__(self, url: str):
        super().__init__()
        self.url = url

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: keep its text only
            text = str(record.msg)
        record.msg, record.args = redact(text, self.url), ()
        return True


@contextmanager
def _redacted_logs(url: str) -> Iterator[None]:
    """Meanwhile, every record of the loggers that see ``url`` is redacted (before any handler sees it)."""
    guard = _Redact(url)
    loggers = [logging.getLogger(name) for name in _URL_LOGGERS]
    for logger in loggers:
        logger.addFilter(guard)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(guard)


def _error_text(result: Any, url: str) -> str:
    lines = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")]
    text = "; ".join(dict.fromkeys(line.strip() for line in lines if line.strip())) or "the target refused it"
    text = re.sub(r"\s+", " ", redact(text, url))
    return text[:MAX_ERROR_CHARS]


def valid_url(url: str) -> bool:
    """Whether Apprise understands the URL (no network)."""
    with _redacted_logs(url):
        return apprise.Apprise.instantiate(url) is not None


def send(url: str, title: str, body: str, *, severity: str = "info", resolved: bool = False, attempts: int = 4,
         wait_seconds: float = 2.0, on_try: Callable[[bool, str | None], None] | None = None) -> Outcome:
    """Send one message, retried with exponential backoff (``wait_seconds``, doubling, capped at 60 s) up to
    ``attempts`` tries; ``on_try(ok, error)`` is told of each try as it ends (the outbox records it). Never raises
    for a delivery failure. A fresh Apprise object per try: a plugin's own throttle (Teams Workflows waits 5.5 s
    between two posts of one object) would add to the backoff."""
    notify_type = apprise.NotifyType.SUCCESS if resolved else _NOTIFY_TYPES.get(severity, apprise.NotifyType.INFO)
    tries = 0
    errors: list[str] = []

    def once() -> bool:
        ok = attempt()
        if on_try is not None:
            on_try(ok, None if ok else errors[-1])
        return ok

    def attempt() -> bool:
        nonlocal tries
        tries += 1
        try:
            sender = apprise.Apprise()
            if not sender.add(url):
                errors.append("Apprise does not understand the target's URL")
                return False
            result = sender.notify(body=body, title=title, notify_type=notify_type,
                                   body_format=apprise.NotifyFormat.MARKDOWN)
        except Exception as exc:  # a plugin bug or an unexpected library error: a failed try, not a crash
            errors.append(redact(f"{type(exc).__name__}: {exc}", url)[:MAX_ERROR_CHARS])
            return False
        if not result:
            errors.append(_error_text(result, url))
        return bool(result)

    retrying = Retrying(stop=stop_after_attempt(max(1, attempts)),
                        wait=wait_exponential(multiplier=wait_seconds, max=60) if wait_seconds > 0 else wait_none(),
                        retry=retry_if_result(lambda ok: not ok), retry_error_callback=lambda state: False)
    with _redacted_logs(url):
        ok = bool(retrying(once))
    return Outcome(ok=ok, attempts=tries, error=None if ok else (errors[-1] if errors else "not delivered"))


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if isinstance(value, datetime) else "unknown"


def compose(kind: str, episode: dict[str, Any], link: str) -> tuple[str, str]:
    """(title, Markdown body) of a notification about one alert episode (a row of ``alerts``): what, since when,
    how many identities, the recommended action and the link to the evidence."""
    where = episode.get("app") or episode.get("job") or "provlens"
    rule, severity = episode["rule"], episode["severity"]
    if kind == "resolved":
        title = f"Resolved: {rule} on {where}"
        lines = [f"**Resolved** at {_when(episode.get('resolved_at'))} "
                 f"(active since {_when(episode.get('first_seen'))}).",
                 f"- **Was:** {episode['message']}"]
    else:
        prefix = "Still active: " if kind == "reminder" else ""
        title = f"{prefix}[{severity.upper()}] {rule} on {where}"
        lines = [f"- **What:** {episode['message']}",
                 f"- **Since:** {_when(episode.get('first_seen'))} (last seen {_when(episode.get('last_seen'))})"]
        if episode.get("identities") is not None:
            lines.append(f"- **Identities:** {int(episode['identities']):,}")
        if episode.get("action"):
            lines.append(f"- **Action:** {episode['action']}")
    if episode.get("job"):
        lines.append(f"- **Job:** {episode['job']}")
    lines.append(f"- **Evidence:** {link}" + (" (set PROVLENS_PUBLIC_URL for a full link)"
                                               if link.startswith("/") else ""))
    return f"provlens: {title}", "\n".join(lines)
