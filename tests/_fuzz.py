"""The hypothesis settings every fuzz test shares.

Examples per property are small by default (a smoke run of seconds); set
``GREENPATCH_FUZZ_EXAMPLES`` for a deeper search, e.g.
``GREENPATCH_FUZZ_EXAMPLES=3000 .venv/bin/pytest tests/server/test_fuzz_http.py``.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("GREENPATCH_FUZZ_EXAMPLES", "0"))


def fuzz(default: int) -> Any:
    """Settings for one property: ``default`` examples unless GREENPATCH_FUZZ_EXAMPLES says.

    No deadline (a real server answers in its own time; a hang is pytest-timeout's),
    no example database (runs leave no files), and fixtures shared by examples are
    fine here: the servers they start are stateless between requests.
    """
    return settings(
        max_examples=EXAMPLES or default,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
