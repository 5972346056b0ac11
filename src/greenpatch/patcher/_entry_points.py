"""Find the ``greenpatch.patches`` entry points without importing ``importlib.metadata``.

``patch_all()`` looks for plugins in every process it starts in, so the look-up
is on the start-up path of every patched program.  ``importlib.metadata`` costs
20-45 ms to import (email parsing, zipfile, csv, pathlib...) and then parses the
metadata of every distribution on ``sys.path``: start-up grew with what else
happened to be installed.  Entry points are plain files,
``<name>-<version>.dist-info/entry_points.txt`` (or ``<name>.egg-info/...``),
in the directories of ``sys.path``; reading those of the distributions that
have one, and parsing only files that mention our group, costs one directory
listing per ``sys.path`` entry and a few small reads.

The rules follow ``importlib.metadata.entry_points()``: ``sys.path`` order
(``""`` is the current directory), the first distribution of a given
(normalised) name wins, ``module:attr`` values with optional ``[extras]``.  A
``sys.path`` entry that is not a directory (a zip archive, an egg file) is
handed to ``importlib.metadata`` after all, for that process only: correctness
over speed where the plain scan cannot see.

Rejected: a cache of the metadata scan keyed by the environment's state (mtimes
of the ``sys.path`` directories).  It is as fast on a hit, but it needs a
writable cache directory, can go stale when an editable project's metadata is
rewritten in place, and a miss still pays the full import.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any

__all__ = ["EntryPoint", "find"]

_SUFFIXES = (".dist-info", ".egg-info")
_SEPARATORS = re.compile(r"[-_.]+")


class EntryPoint:
    """One entry point: ``name = value`` of the distribution ``distribution``."""

    # A plain class: a dataclass costs a millisecond of code generation at
    # import, on the start-up path this module exists to shorten.
    __slots__ = ("distribution", "name", "value")

    def __init__(self, name: str, value: str, distribution: str) -> None:
        self.name = name
        self.value = value
        self.distribution = distribution

    def __repr__(self) -> str:
        return f"EntryPoint({self.name!r}, {self.value!r}, {self.distribution!r})"

    def load(self) -> Any:
        """Import ``module`` and return ``module.attr`` (dotted attrs allowed)."""
        reference = self.value.split("[", 1)[0].strip()
        module_name, _, attrs = reference.partition(":")
        target: Any = importlib.import_module(module_name.strip())
        for attr in filter(None, attrs.strip().split(".")):
            target = getattr(target, attr)
        return target


def _distribution_name(entry: str) -> str:
    stem = entry[: entry.rindex(".")]
    name = stem.split("-", 1)[0]  # "name-version" (egg-info may omit the version)
    return _SEPARATORS.sub("_", name).lower()


def _group_lines(text: str, group: str) -> list[tuple[str, str]]:
    """``(name, value)`` pairs of ``[group]`` in an entry_points.txt."""
    found: list[tuple[str, str]] = []
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            inside = line[1:-1].strip() == group
            continue
        if inside and "=" in line:
            name, _, value = line.partition("=")
            found.append((name.strip(), value.strip()))
    return found


def _from_metadata(group: str) -> list[EntryPoint]:
    from importlib import metadata

    found: Any = metadata.entry_points()
    selected = (
        found.select(group=group) if hasattr(found, "select") else found.get(group, ())
    )  # Python 3.9: a dict of group -> entry points
    return [
        EntryPoint(entry.name, entry.value, getattr(getattr(entry, "dist", None), "name", "?"))
        for entry in selected
    ]


def _read_all(fd: int) -> bytes:
    # Small reads: os.read(fd, n) allocates n bytes before it reads, and a
    # megabyte per file cost more than everything else here.  A regular file
    # answers a short read only at its end, so one read is the common case.
    data = os.read(fd, 8192)
    if len(data) < 8192:
        return data
    chunks = [data]
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def find(group: str, path: list[str] | None = None) -> list[EntryPoint]:
    """The entry points of ``group`` on ``path`` (default ``sys.path``), in order."""
    entries = sys.path if path is None else path
    seen: set[str] = set()
    found: list[EntryPoint] = []
    needle = group.encode()
    for entry in entries:
        directory = entry or "."
        try:
            with os.scandir(directory) as listing:
                names = sorted(
                    item.name for item in listing if item.name.endswith(_SUFFIXES) and item.is_dir()
                )
        except NotADirectoryError:
            if path is None:
                return _from_metadata(group)
            continue
        except OSError:
            continue  # missing or unreadable: importlib.metadata skips it too
        for name in names:
            distribution = _distribution_name(name)
            if distribution in seen:
                continue
            seen.add(distribution)
            # os.open/os.read, not open(): the text layer costs more than the
            # read itself, and most files do not mention the group.
            try:
                fd = os.open(os.path.join(directory, name, "entry_points.txt"), os.O_RDONLY)
            except OSError:
                continue
            try:
                data = _read_all(fd)
            except OSError:
                continue
            finally:
                os.close(fd)
            if needle not in data:
                continue
            text = data.decode("utf-8", "replace")
            found.extend(
                EntryPoint(point, value, distribution) for point, value in _group_lines(text, group)
            )
    return found
