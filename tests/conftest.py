"""Shared fixtures.  Every test has a generous timeout (pytest-timeout) so that a
bug that hangs the loop fails one test instead of the whole run.  Tests marked
``soak`` are skipped unless ``-m soak`` is given."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Soak and load tests (minutes) run only when asked for: pytest -m soak (tox -e soak).
    run_soak = "soak" in (config.getoption("markexpr", "") or "")
    skip_soak = pytest.mark.skip(reason="a soak test: run with -m soak (tox -e soak)")
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(60))
        if not run_soak and item.get_closest_marker("soak") is not None:
            item.add_marker(skip_soak)
