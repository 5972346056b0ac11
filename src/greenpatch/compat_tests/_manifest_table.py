"""Typed reads of a manifest's TOML tables, each failure naming the file and key.

Split from manifest.py, which says what a manifest holds; this module only
says how a bad value is refused (one ``ManifestError``: file, dotted key, what
was expected, what was found).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["ManifestError", "Table", "kind"]


class ManifestError(ValueError):
    """A manifest that cannot be used: the file, the key, and what was expected."""

    def __init__(self, path: str | Path, key: str, problem: str) -> None:
        self.path = str(path)
        self.key = key
        self.problem = problem
        where = f" [{key}]" if key else ""
        super().__init__(f"{self.path}{where}: {problem}")


class Table:
    """Typed reads of one TOML table, each failure naming the file and dotted key."""

    def __init__(self, path: Path, data: Any, prefix: str) -> None:
        self.path = path
        self.prefix = prefix
        if not isinstance(data, dict):
            raise ManifestError(path, prefix, f"expected a table, got {kind(data)}")
        self.data: dict[str, Any] = data

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, problem: str) -> ManifestError:
        return ManifestError(self.path, self.key(name), problem)

    def string(self, name: str, default: str | None = None, required: bool = False) -> str | None:
        if name not in self.data:
            if required:
                raise self.error(name, "missing; expected a string")
            return default
        value = self.data[name]
        if not isinstance(value, str) or not value.strip():
            raise self.error(name, f"expected a non-empty string, got {kind(value)}")
        return str(value)

    def number(self, name: str, default: float, minimum: float = 0.0) -> float:
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(name, f"expected a number > {minimum:g}, got {kind(value)}")
        # TOML has nan and inf, and integers float() cannot hold: none is a
        # usable timeout or delay (nan even passes "> 0" by failing every test).
        if isinstance(value, int) and value.bit_length() > 1000:
            raise self.error(name, f"expected a number > {minimum:g}, got an integer too large")
        if not math.isfinite(value) or value <= minimum:
            raise self.error(name, f"expected a number > {minimum:g}, got {value!r}")
        return float(value)

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        value = self.data.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise self.error(
                name, f"expected an integer from {minimum} to {maximum}, got {kind(value)}"
            )
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"expected true or false, got {kind(value)}")
        return value

    def strings(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.data.get(name, list(default))
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.error(name, f"expected a list of strings, got {kind(value)}")
        return tuple(value)

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.string(name, default)
        if value not in choices:
            raise self.error(name, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def table(self, name: str) -> Table:
        return Table(self.path, self.data.get(name, {}), self.key(name))

    def tables(self, name: str) -> list[Table]:
        value = self.data.get(name, [])
        if not isinstance(value, list):
            raise self.error(name, f"expected an array of tables ([[{name}]]), got {kind(value)}")
        return [Table(self.path, item, f"{self.key(name)}[{i}]") for i, item in enumerate(value)]

    def check_known(self, known: tuple[str, ...]) -> None:
        for name in self.data:
            if name not in known:
                raise self.error(name, f"unknown key; expected one of {', '.join(known)}")


def kind(value: Any) -> str:
    """A value as the error shows it: its type and (the start of) its repr."""
    return f"{type(value).__name__} {value!r}"[:80]
