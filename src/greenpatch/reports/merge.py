"""Many result files -> one matrix: (suite, version) rows x Python columns.

Results arrive from several tox envs or CI jobs, often as a directory of
artifacts.  Each cell of the matrix holds one result; a cell given twice (a
re-run job, an artifact downloaded twice) keeps the newer document -- by
``finished_at``, else ``started_at``, else the one given last -- and the matrix
carries a note saying which file was kept and which dropped, so that nobody
wonders why a result "disappeared".

Python is keyed by its minor version (3.11, not 3.11.7), as the harness names
its files (``requests-2.32.3-py3.11.json``): two patch releases of 3.11 are the
same cell of a CI matrix, not two columns.

A file that cannot be read does not stop the others from being rendered: it is
kept in ``Matrix.problems`` (each a ``ResultError`` naming the file), shown by
every rendering and by the CLI's exit status.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import InvalidVersion, Version

from greenpatch.reports.model import Result, ResultError
from greenpatch.reports.validate import load_result

__all__ = [
    "CellKey",
    "Entry",
    "Matrix",
    "cell_key",
    "find_result_files",
    "load_matrix",
    "merge",
    "python_minor",
    "row_name",
]


@dataclass(frozen=True, order=True)
class CellKey:
    #: The suite's row name: its name, and what the patched run left out when it
    #: did (``redis (patched without zmq)``), so that "patched" and "patched
    #: without a plugin" are two rows, not one cell given twice.
    suite: str
    version: str
    python: str  # the minor version, "3.11"


@dataclass
class Entry:
    """A result and the file it came from (as given on the command line)."""

    result: Result
    source: str = "<memory>"

    @property
    def key(self) -> CellKey:
        return cell_key(self.result)


@dataclass
class Matrix:
    """The merged results, in a stable order, with what the merge decided."""

    entries: list[Entry] = field(default_factory=list)
    #: One line per duplicate cell: which file was kept, which dropped, and why.
    notes: list[str] = field(default_factory=list)
    #: Files that could not be read; the rest is still rendered.
    problems: list[ResultError] = field(default_factory=list)

    @property
    def rows(self) -> list[tuple[str, str]]:
        """(suite, version) pairs, suites by name and versions newest first."""
        pairs = {(entry.key.suite, entry.key.version) for entry in self.entries}
        return sorted(pairs, key=lambda pair: (pair[0], *_newest_first(pair[1])))

    @property
    def pythons(self) -> list[str]:
        """The Python minor versions present, oldest first."""
        return sorted({entry.key.python for entry in self.entries}, key=_version_key)

    def cell(self, suite: str, version: str, python: str) -> Entry | None:
        wanted = CellKey(suite, version, python)
        return next((entry for entry in self.entries if entry.key == wanted), None)


def python_minor(version: str) -> str:
    """``"3.11.7"`` -> ``"3.11"``; ``"3.13.0rc1"`` -> ``"3.13"``; anything else unchanged."""
    parts = version.split(".")
    if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
        return f"{parts[0]}.{parts[1]}"
    return version


def row_name(result: Result) -> str:
    """``redis``, or ``redis (patched without zmq)`` for a run that left flags out."""
    return f"{result.suite} ({result.variant})" if result.variant else result.suite


def cell_key(result: Result) -> CellKey:
    return CellKey(row_name(result), result.version, python_minor(result.python))


def _version_key(version: str) -> tuple[int, Version | str]:
    # Versions that packaging cannot parse (a git ref, "main") sort after real ones.
    try:
        return (0, Version(version))
    except InvalidVersion:
        return (1, version)


def _newest_first(version: str) -> tuple[int, Version | str]:
    """A sort key putting releases newest first, then labels packaging cannot read."""
    flag, value = _version_key(version)
    return (flag, _Descending(value)) if flag == 0 else (flag, value)  # type: ignore[return-value]


class _Descending:
    """Wraps a Version so that sorting puts the larger one first."""

    __slots__ = ("value",)

    def __init__(self, value: Version | str) -> None:
        self.value = value

    def __lt__(self, other: _Descending) -> bool:
        return self.value > other.value  # type: ignore[operator]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


_OLDEST = datetime.datetime.min.replace(tzinfo=datetime.timezone.utc)


def _timestamp(result: Result) -> tuple[datetime.datetime, str]:
    """When the result was made, for "keep the newer"; unknown is oldest."""
    for text in (result.finished_at, result.started_at):
        if not text:
            continue
        try:
            # fromisoformat() before 3.11 does not take the "Z" suffix.
            moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        return moment, text
    return _OLDEST, "at an unknown time"


def _label(key: CellKey) -> str:
    return f"{key.suite} {key.version} on Python {key.python}"


def merge(entries: Iterable[Entry], problems: Sequence[ResultError] = ()) -> Matrix:
    """One entry per cell: of two for the same cell the newer wins, with a note."""
    kept: dict[CellKey, Entry] = {}
    notes: list[str] = []
    for entry in entries:
        key = entry.key
        old = kept.get(key)
        if old is None:
            kept[key] = entry
            continue
        old_time, old_text = _timestamp(old.result)
        new_time, new_text = _timestamp(entry.result)
        # On a tie the later argument wins: it is usually the later download.
        newer, older = (entry, old) if new_time >= old_time else (old, entry)
        newer_text, older_text = (new_text, old_text) if newer is entry else (old_text, new_text)
        kept[key] = newer
        notes.append(
            f"{_label(key)} was given twice: kept {newer.source} (finished {newer_text}), "
            f"dropped {older.source} (finished {older_text})"
        )
    ordered = sorted(kept.values(), key=_entry_order)
    return Matrix(entries=ordered, notes=notes, problems=list(problems))


def _entry_order(entry: Entry) -> tuple[object, ...]:
    # The order of Matrix.rows, then Python: renderings list results as the matrix shows them.
    key = entry.key
    return (key.suite, *_newest_first(key.version), _version_key(key.python))


def find_result_files(
    paths: Iterable[str | os.PathLike[str]],
) -> tuple[list[Path], list[ResultError]]:
    """Expand directories to the ``*.json`` files in them (not recursive, no dot-files).

    Directories are accepted because tox does not expand globs in ``commands``;
    dot-files are skipped because ``write_result`` writes ``.NAME.tmp`` first.
    The same file named twice (a directory and a glob) is read once.
    """
    files: list[Path] = []
    problems: list[ResultError] = []
    seen: set[Path] = set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.glob("*.json") if not p.name.startswith("."))
            if not found:
                problems.append(ResultError(path, "no result files (*.json) in this directory"))
        else:
            found = [path]
        for candidate in found:
            resolved = candidate.resolve()
            if resolved not in seen:
                seen.add(resolved)
                files.append(candidate)
    return files, problems


def load_matrix(paths: Iterable[str | os.PathLike[str]]) -> Matrix:
    """Read every result under ``paths`` and merge them; unreadable files become problems."""
    files, problems = find_result_files(paths)
    entries: list[Entry] = []
    for path in files:
        try:
            entries.append(Entry(load_result(path), str(path)))
        except ResultError as exc:
            problems.append(exc)
    return merge(entries, problems)
