"""The CI matrix: one cell per (suite, Python), as tox envs and as a GitHub Actions matrix.

tox.ini declares ``compat-{requests,redis}-py{39,310,311,312,313}``; a GitHub
workflow wants the same cells as JSON (``strategy.matrix: ${{ fromJSON(..) }}``)
so that each runs as its own job.  Both names come from ``tox_env_name`` so
that the workflow's ``tox -e`` always names an env that tox.ini has.

The suite list is an argument: ``reports`` may not import ``compat_tests``,
which knows the built-in suites (docs/architecture.md), so ``greenpatch compat matrix``
passes them in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["DEFAULT_PYTHONS", "format_github_matrix", "github_matrix", "tox_env_name", "tox_envs"]

#: The Pythons of the CI matrix (as in tox.ini's ``py{39,310,311,312,313}``).
DEFAULT_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")

# A tox factor is split on "-": a suite name must be one factor.
_FACTOR = re.compile(r"[A-Za-z0-9_]+")
_PYTHON = re.compile(r"3\.[0-9]+")


def tox_env_name(suite: str, python: str) -> str:
    """``("redis", "3.10")`` -> ``"compat-redis-py310"``."""
    if not _FACTOR.fullmatch(suite):
        raise ValueError(
            f"suite name {suite!r} cannot be a tox factor: use letters, digits and '_' only"
        )
    if not _PYTHON.fullmatch(python):
        raise ValueError(f"Python {python!r}: expected a version like 3.12")
    return f"compat-{suite}-py{python.replace('.', '')}"


def tox_envs(suites: Sequence[str], pythons: Sequence[str] = DEFAULT_PYTHONS) -> list[str]:
    """Every cell's tox env, suite by suite, Pythons in the given order."""
    return [tox_env_name(suite, python) for suite in suites for python in pythons]


def github_matrix(
    suites: Sequence[str], pythons: Sequence[str] = DEFAULT_PYTHONS
) -> dict[str, list[dict[str, Any]]]:
    """``{"include": [{"suite", "python", "toxenv"}, ...]}`` for ``strategy.matrix``.

    ``include`` (rather than two axes) lets a job read its tox env name
    directly, and lets a caller drop single cells without ``exclude`` rules.
    """
    if not suites or not pythons:
        # GitHub fails a workflow whose matrix is empty with a message that names neither.
        raise ValueError("no suites or no Pythons: the matrix would be empty")
    return {
        "include": [
            {"suite": suite, "python": python, "toxenv": tox_env_name(suite, python)}
            for suite in suites
            for python in pythons
        ]
    }


def format_github_matrix(suites: Sequence[str], pythons: Sequence[str] = DEFAULT_PYTHONS) -> str:
    """The matrix as one line of JSON, for ``echo "matrix=..." >> "$GITHUB_OUTPUT"``."""
    return json.dumps(github_matrix(suites, pythons), separators=(",", ":"))
