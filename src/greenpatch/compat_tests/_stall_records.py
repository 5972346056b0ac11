"""Stall records on disk: the JSON-lines sink, reading a file back, and hot spots.

Kept apart from the monitor so that reading and aggregating a stall file after a
run imports nothing of the hub.  ``stall.py`` re-exports all of it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "UNSCHEDULED_FRAME",
    "JsonLinesSink",
    "StallFileError",
    "aggregate",
    "read_records",
]

StallRecord = dict[str, Any]


class StallFileError(ValueError):
    """A stall file holds a line that is not a JSON object (not just a cut-off last line)."""


@dataclass
class JsonLinesSink:
    """Appends each record as one JSON line to ``path``, one ``write()`` per record.

    The file is opened, appended to and closed per record, with ``O_APPEND`` and a
    single write, so a crash loses nothing already recorded and processes sharing
    the file (pytest-xdist workers) never interleave lines.
    """

    path: str
    written: int = field(default=0, init=False)

    def __call__(self, record: StallRecord) -> None:
        data = (json.dumps(record, default=str) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        self.written += 1


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a stall file.  A last line cut short by a crash is skipped;
    any other line that is not a JSON object raises ``StallFileError`` naming it."""
    with open(path, encoding="utf-8") as file:
        lines = file.read().split("\n")
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    records: list[dict[str, Any]] = []
    for position, (number, line) in enumerate(numbered):
        try:
            record = json.loads(line)
        except ValueError as exc:
            if position == len(numbered) - 1:
                break  # the writer died in the middle of its last record
            raise StallFileError(
                f"{os.fspath(path)}:{number}: not a JSON stall record ({exc}); the file is "
                "corrupt, or was written by something other than the stall monitor"
            ) from None
        if not isinstance(record, dict):
            raise StallFileError(
                f"{os.fspath(path)}:{number}: expected a JSON object, got {type(record).__name__}"
            )
        records.append(record)
    return records


#: The one hot spot that gathers every stall of a process that was not running:
#: its frame is wherever the hub happened to be, so it names no culprit.
UNSCHEDULED_FRAME = "<the process was not scheduled: not the library's doing>"


def aggregate(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Hot spots: records grouped by their blocking call site, worst first.

    Each is ``{"frame", "count", "worst", "total", "tests", "stack", "kind",
    "kinds"}``; ``stack`` is that of the worst stall at that site, ``tests`` the
    sorted ids that stalled there, ``kinds`` the number of stalls of each kind
    (see ``stall.classify``) and ``kind`` the one that held the hub longest.
    Stalls of kind "unscheduled" are not blamed on their frame: they form one
    spot of their own (``UNSCHEDULED_FRAME``), listed after every other.
    """
    groups: dict[str, dict[str, Any]] = {}
    for record in records:
        kind = str(record.get("kind") or "unknown")
        frame = str(record.get("frame") or "<unknown>")
        if kind == "unscheduled":
            frame = UNSCHEDULED_FRAME
        duration = float(record.get("duration") or 0.0)
        group = groups.get(frame)
        if group is None:
            group = groups[frame] = {
                "frame": frame,
                "count": 0,
                "worst": duration,
                "total": 0.0,
                "tests": set(),
                "stack": record.get("stack") or [],
                "kinds": {},
                "_held": {},
            }
        group["count"] += 1
        group["total"] += duration
        group["kinds"][kind] = group["kinds"].get(kind, 0) + 1
        group["_held"][kind] = group["_held"].get(kind, 0.0) + duration
        if duration > group["worst"]:
            group["worst"] = duration
            group["stack"] = record.get("stack") or []
        if record.get("test") is not None:
            group["tests"].add(str(record["test"]))
    spots = sorted(
        groups.values(),
        key=lambda g: (g["frame"] == UNSCHEDULED_FRAME, -g["worst"], -g["count"], g["frame"]),
    )
    for spot in spots:
        held = spot.pop("_held")
        spot["kind"] = max(sorted(held), key=lambda kind: held[kind])
        spot["tests"] = sorted(spot["tests"])
        spot["total"] = round(spot["total"], 4)
    return spots
