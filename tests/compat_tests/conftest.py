"""Fixtures of the harness's tests, and the ``compat`` marker.

Tests marked ``compat`` run the real suites (requests, redis-py): minutes, and
they build environments from the package index.  They are skipped unless the
marker is asked for: ``pytest -m compat`` (``tox -e compat``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINYLIB = FIXTURES / "tinylib"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "compat: runs a real library's suite (tox -e compat)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "compat" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="a real suite: run with -m compat (tox -e compat)")
    for item in items:
        if item.get_closest_marker("compat") is not None:
            item.add_marker(skip)


@pytest.fixture
def tinylib_manifest_text() -> str:
    return (TINYLIB / "suite.toml").read_text()


def write_manifest(directory: Path, text: str, name: str = "suite.toml") -> Path:
    """A manifest in ``directory`` whose source is the tinylib fixture."""
    text = text.replace('path = "."', f'path = "{TINYLIB}"')
    path = directory / name
    path.write_text(text)
    return path


@pytest.fixture
def python() -> str:
    return sys.executable
