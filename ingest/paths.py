"""Expanding the PATH arguments of the file-reading sources: files, directories (recursively), globs."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable


def expand_paths(paths: list[str], wanted_in_directory: Callable[[str], bool], *,
                 absolute: bool = False, follow_symlinks: bool = True,
                 skipped_links: list[str] | None = None) -> tuple[list[str], list[str]]:
    """The files named directly or matched by a glob, plus those inside named directories whose file name
    passes ``wanted_in_directory``; each once, in order. Returns (files, arguments that matched nothing).

    With ``follow_symlinks=False`` a symbolic link found in a directory or matched by a glob (to a file or a
    directory) is not read but appended to ``skipped_links``; a path named directly is always read."""
    found: list[str] = []
    missing: list[str] = []
    skipped = skipped_links if skipped_links is not None else []
    for p in paths:
        if os.path.isdir(p):
            seen: set[tuple[int, int]] = set()
            for root, dirs, files in os.walk(p, followlinks=follow_symlinks):
                st = os.stat(root)
                if (st.st_dev, st.st_ino) in seen:  # a link loop (only when following links)
                    dirs[:] = []
                    continue
                seen.add((st.st_dev, st.st_ino))
                if not follow_symlinks:
                    skipped.extend(os.path.join(root, d) for d in sorted(dirs)
                                   if os.path.islink(os.path.join(root, d)) and not d.startswith("."))
                for f in sorted(files):
                    if f.startswith(".") or not wanted_in_directory(f.lower()):
                        continue
                    full = os.path.join(root, f)
                    if not follow_symlinks and os.path.islink(full):
                        skipped.append(full)
                    elif os.path.isfile(full):
                        found.append(full)
        elif os.path.isfile(p):
            found.append(p)
        else:
            matches = sorted(m for m in glob.glob(p, recursive=True) if os.path.isfile(m))
            if not follow_symlinks:
                links = [m for m in matches if os.path.islink(m)]
                skipped.extend(links)
                matches = [m for m in matches if not os.path.islink(m)]
                if links and not matches:
                    continue
            if matches:
                found.extend(matches)
            else:
                missing.append(p)
    unique: dict[str, str] = {}
    for f in found:
        unique.setdefault(os.path.abspath(f), os.path.abspath(f) if absolute else f)
    return list(unique.values()), missing
