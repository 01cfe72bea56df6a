"""Configuration: command-line flags > environment (``PROVLENS_*``) > ``provlens.toml`` > defaults.

Secrets are never read from here; they come from the environment or a credential chain only.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

DEFAULT_DB = "data/provlens.duckdb"
DEFAULT_CONFIG = "provlens.toml"


class ConfigError(Exception):
    """A configuration value is missing or wrong; the message says which and how to fix it."""


def load_toml(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read ``provlens.toml`` (or ``PROVLENS_CONFIG``); a missing default file is an empty config."""
    explicit = path or os.environ.get("PROVLENS_CONFIG")
    candidate = Path(explicit or DEFAULT_CONFIG)
    if not candidate.exists():
        if explicit:
            raise ConfigError(f"config file {candidate} does not exist")
        return {}
    try:
        with candidate.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {candidate} is not valid TOML: {exc}") from exc


def resolve_db_path(flag: str | None = None, config: dict[str, Any] | None = None) -> str:
    """The database every command and the dashboard use: --db > PROVLENS_DB > provlens.toml > default."""
    if flag:
        return flag
    env = os.environ.get("PROVLENS_DB")
    if env:
        return env
    if config is None:
        try:
            config = load_toml()
        except ConfigError:
            config = {}
    db = config.get("db") or config.get("store", {}).get("db")
    return db or DEFAULT_DB
