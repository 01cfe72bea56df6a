"""Progress bars on a terminal only (tqdm); silent in cron, CI and logs."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], *, desc: str, unit: str, disable: bool = False, total: int | None = None):
    return tqdm(items, desc=desc, unit=unit, total=total, disable=disable or not sys.stderr.isatty(),
                file=sys.stderr, leave=False)
