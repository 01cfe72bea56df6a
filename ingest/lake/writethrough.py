"""Write-through: after an ingest command (``files``, ``scim``, ``blobs``, ``graph``, ``run``) has loaded data into
the store, copy the store into a lake, incrementally (:func:`ingest.lake.command.copy_db`).

The lake is ``--lake URL`` (and ``--lake-tenant``), or a ``[lake]`` table in provlens.toml (``url``, ``tenant``).
The store's data is committed before the copy starts, so a lake that fails never loses it: the failure is one line
and exit code 8 (``exitcodes.LAKE``) when the ingest itself was OK (the ingest's own non-zero code wins otherwise),
and the next run (or ``python -m queries lake``) copies what is missing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ingest import exitcodes
from ingest.config import ConfigError

# An ingest that landed data (all of it, part of it, or with rejected input under --strict) is copied.
COPY_AFTER = (exitcodes.OK, exitcodes.PARTIAL, exitcodes.STRICT)


def add_lake_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lake", metavar="URL", help="after loading, copy the store into this Delta lake, incrementally "
                                                 "(a directory, az://CONTAINER/PATH or abfss://...; default: "
                                                 "[lake] url in provlens.toml, else none)")
    p.add_argument("--lake-tenant", metavar="NAME",
                   help="the lake_tenant of the copy (default: [lake] tenant, else the store's events.tenant_id)")


def lake_settings(args: argparse.Namespace, config: dict) -> tuple[str, str | None] | None:
    """(url, tenant) of the write-through lake, or None when none is configured."""
    section = config.get("lake", {})
    if not isinstance(section, dict):
        raise ConfigError("[lake] in provlens.toml must be a table: url = \"...\", tenant = \"...\" (optional)")
    for key in ("url", "tenant"):
        if section.get(key) is not None and not isinstance(section[key], str):
            raise ConfigError(f"[lake] {key} must be a string")
    url = getattr(args, "lake", None) or section.get("url")
    if not url:
        return None
    return url, getattr(args, "lake_tenant", None) or section.get("tenant")


def check_settings(args: argparse.Namespace, config: dict) -> None:
    """Refuse a bad [lake] table, lake URL or tenant before the ingest starts (ConfigError: exit 2)."""
    from ingest.lake.errors import LakeUsageError, check_lake_tenant, check_lake_url

    settings = lake_settings(args, config)
    if settings is None:
        return
    try:
        check_lake_url(settings[0])
        if settings[1] is not None:
            check_lake_tenant(settings[1])
    except LakeUsageError as exc:
        raise ConfigError(str(exc)) from None


def write_through(db: str, args: argparse.Namespace, config: dict, code: int, *,
                  say: Callable[[str, bool], None] | None = None) -> int:
    """Copy ``db`` into the configured lake when the ingest (exit ``code``) landed data; the exit code to return.
    ``say(line, is_error)`` reports (default: stderr)."""
    settings = lake_settings(args, config)
    if settings is None or code not in COPY_AFTER:
        return code
    from ingest.lake.command import copy_db, summary
    from ingest.lake.errors import explain

    def default_say(line: str, is_error: bool) -> None:
        print(("error: " if is_error else "") + line, file=sys.stderr)

    say = say or default_say
    url, tenant = settings
    try:
        report = copy_db(db, url, tenant, quiet=bool(getattr(args, "quiet", False)))
    except Exception as exc:  # noqa: BLE001 - the store's data is committed: one line, exit 8, never a traceback
        _, line = explain(exc, url)
        say(f"{line}; the store's data is kept: re-run, or run `python -m queries lake --db {db} --to {url}`",
            True)
        return exitcodes.LAKE if code == exitcodes.OK else code
    say(summary(report, url), False)
    return code
