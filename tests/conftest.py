"""Shared fixtures.  Every test has a generous timeout (pytest-timeout) so that a
bug that hangs the loop fails one test instead of the whole run."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(60))
