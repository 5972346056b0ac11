"""The rooms' arrows point one way (docs/architecture.md): a test fails when one points back.

hub -> nothing of ours outside hub; patcher -> hub; plugins -> patcher, hub; server -> hub;
compat_tests -> patcher, hub, reports; reports -> nothing of ours.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "greenpatch"

ALLOWED = {
    "hub": {"hub"},
    "patcher": {"hub", "patcher"},
    "plugins": {"plugins", "patcher", "hub"},
    "server": {"hub", "server"},
    "compat_tests": {"compat_tests", "patcher", "hub", "reports"},
    "reports": {"reports"},
}


def _imported_rooms(path: Path) -> set[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "greenpatch" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_room_imports_only_what_it_may(room):
    directory = SRC / room
    if not directory.exists():
        pytest.skip(f"{room} does not exist yet")
    problems = []
    for path in sorted(directory.rglob("*.py")):
        for imported, line in _imported_rooms(path):
            if imported in ALLOWED and imported not in ALLOWED[room]:
                problems.append(f"{path.relative_to(SRC)}:{line} imports greenpatch.{imported}")
    assert not problems, "arrows point the wrong way:\n" + "\n".join(problems)


def test_hub_does_not_import_the_top_level_package_api():
    # The hub must not depend on greenpatch/__init__ re-exports (import cycles).
    for path in (SRC / "hub").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "greenpatch":
                pytest.fail(f"{path.name}:{node.lineno} imports from greenpatch itself")
