"""The repository stands alone: its design is in docs/architecture.md, and nothing
in it points at a document outside it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOMS = sorted(
    path.name
    for path in (ROOT / "src" / "greenpatch").iterdir()
    if path.is_dir() and (path / "__init__.py").exists()
)

# Documents that live outside the repository (a design map and a style guide
# the project once cited), and any path that climbs out of the checkout.
_OUTSIDE = re.compile(r"\b(DESIGN|STYLE)\.md\b|\.\./shared\b")


def _project_files() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "Makefile", ROOT / "tox.ini", ROOT / "pyproject.toml"]
    for folder in ("src", "tests", "benchmarks", "docs", "tools", ".ci"):
        found += [
            path
            for path in (ROOT / folder).rglob("*")
            if path.is_file() and path.suffix in {".py", ".md", ".toml", ".pyi", ".c", ".j2", ""}
        ]
    return [path for path in found if path.exists() and path != Path(__file__).resolve()]


def test_no_file_cites_a_document_outside_the_repository():
    offenders = []
    for path in _project_files():
        text = path.read_text(errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if _OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_readme_layout_lists_every_room():
    readme = (ROOT / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    missing = [room for room in ROOMS if f"src/greenpatch/{room}/" not in layout]
    assert ROOMS and missing == []


def test_architecture_page_describes_every_room():
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    missing = [room for room in ROOMS if f"`{room}/`" not in architecture]
    assert missing == []
