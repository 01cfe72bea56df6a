"""Expanding the PATH arguments of the file-reading sources: files, directories (recursively), globs."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable


def expand_paths(paths: list[str], wanted_in_directory: Callable[[str], bool], *,
                 absolute: bool = False) -> tuple[list[str], list[str]]:
    """The files named directly or matched by a glob, plus those inside named directories whose file name
    passes ``wanted_in_directory``; each once, in order. Returns (files, arguments that matched nothing)."""
    found: list[str] = []
    missing: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            for root, _dirs, files in os.walk(p):
                found.extend(os.path.join(root, f) for f in sorted(files)
                             if not f.startswith(".") and wanted_in_directory(f.lower()))
        elif os.path.isfile(p):
            found.append(p)
        else:
            matches = sorted(m for m in glob.glob(p, recursive=True) if os.path.isfile(m))
            if matches:
                found.extend(matches)
            else:
                missing.append(p)
    unique: dict[str, str] = {}
    for f in found:
        unique.setdefault(os.path.abspath(f), os.path.abspath(f) if absolute else f)
    return list(unique.values()), missing
