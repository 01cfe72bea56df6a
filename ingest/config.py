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


# MotherDuck (``md:`` paths) was named in the design but never tested: no MotherDuck-compatible DuckDB installs
# offline here, and MotherDuck's clients stop at DuckDB 1.5.x while provlens runs 2.x. Untested paths do not ship.
MOTHERDUCK_UNSUPPORTED = ("MotherDuck (md:) databases are not supported: provlens reads and writes a local DuckDB "
                          "file; to share data beyond one machine, copy stores into a lake (python -m queries lake; "
                          "README, \"Reading a lake from the dashboard\")")


def check_db_setting(path: str) -> str:
    """``path`` if provlens can use it as its database, else ConfigError (a MotherDuck ``md:`` path)."""
    if path.strip().lower().startswith("md:"):
        raise ConfigError(f"{path.split('?')[0]}: {MOTHERDUCK_UNSUPPORTED}")
    return path


def resolve_db_path(flag: str | None = None, config: dict[str, Any] | None = None) -> str:
    """The database every command and the dashboard use: --db > PROVLENS_DB > provlens.toml > default
    (ConfigError for a MotherDuck ``md:`` path)."""
    if flag:
        return check_db_setting(flag)
    env = os.environ.get("PROVLENS_DB")
    if env:
        return check_db_setting(env)
    if config is None:
        try:
            config = load_toml()
        except ConfigError:
            config = {}
    db = config.get("db") or config.get("store", {}).get("db")
    return check_db_setting(db or DEFAULT_DB)
