"""The CI matrix: one cell per (suite, library release line, Python), as tox
envs and as a GitHub Actions matrix.

tox.ini declares one env per suite and Python, ``compat-<suite>-py3X`` (a
suite's "-" becomes "_": a tox factor is split on "-"); the env tests the
newest release, and ``tox -e ENV -- --version 5.*`` another line.  A GitHub
workflow wants the cells as JSON (``strategy.matrix: ${{ fromJSON(..) }}``) so
that each runs as its own job: one per (suite, line, Python), with the tox env
and the ``posargs`` that select the line.  Both names come from
``tox_env_name`` so that the workflow's ``tox -e`` always names an env that
tox.ini has.

The suite list is an argument: ``reports`` may not import ``compat_tests``,
which knows the built-in suites (docs/architecture.md), so ``greenpatch compat matrix``
passes them in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Union

__all__ = [
    "DEFAULT_PYTHONS",
    "LATEST",
    "format_github_matrix",
    "github_matrix",
    "tox_env_name",
    "tox_envs",
]

#: The Pythons of the CI matrix (as in tox.ini's ``py{39,310,311,312,313}``).
DEFAULT_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")

# A tox factor is split on "-": a suite name's "-" becomes "_" in it.
_FACTOR = re.compile(r"[A-Za-z0-9_]+")
#: The release line every suite has: its newest release.
LATEST = "latest"
_PYTHON = re.compile(r"3\.[0-9]+")


def tox_env_name(suite: str, python: str) -> str:
    """``("redis", "3.10")`` -> ``"compat-redis-py310"``; ``websocket-client`` ->
    ``compat-websocket_client-py310``."""
    factor = suite.replace("-", "_")
    if not _FACTOR.fullmatch(factor):
        raise ValueError(
            f"suite name {suite!r} cannot be a tox factor: use letters, digits, '_' and '-' only"
        )
    if not _PYTHON.fullmatch(python):
        raise ValueError(f"Python {python!r}: expected a version like 3.12")
    return f"compat-{factor}-py{python.replace('.', '')}"


def tox_envs(suites: Sequence[str], pythons: Sequence[str] = DEFAULT_PYTHONS) -> list[str]:
    """Every cell's tox env, suite by suite, Pythons in the given order."""
    return [tox_env_name(suite, python) for suite in suites for python in pythons]


Suites = Union[Sequence[str], Mapping[str, Sequence[str]]]


def _lines(suites: Suites) -> list[tuple[str, Sequence[str]]]:
    if isinstance(suites, Mapping):
        return [(suite, lines or (LATEST,)) for suite, lines in suites.items()]
    return [(suite, (LATEST,)) for suite in suites]


def github_matrix(
    suites: Suites, pythons: Sequence[str] = DEFAULT_PYTHONS
) -> dict[str, list[dict[str, Any]]]:
    """``{"include": [{"suite", "version", "python", "toxenv", "posargs"}, ...]}``
    for ``strategy.matrix``.

    ``suites`` is a list of names (each at its newest release) or a mapping of
    name -> release lines (``{"redis": ["latest", "5.*"]}``).  ``include``
    (rather than axes) lets a job read its tox env and arguments directly, and
    lets a caller drop single cells without ``exclude`` rules.
    """
    cells = [
        {
            "suite": suite,
            "version": line,
            "python": python,
            "toxenv": tox_env_name(suite, python),
            "posargs": "" if line == LATEST else f"--version {line}",
        }
        for suite, lines in _lines(suites)
        for line in lines
        for python in pythons
    ]
    if not cells:
        # GitHub fails a workflow whose matrix is empty with a message that names neither.
        raise ValueError("no suites or no Pythons: the matrix would be empty")
    return {"include": cells}


def format_github_matrix(suites: Suites, pythons: Sequence[str] = DEFAULT_PYTHONS) -> str:
    """The matrix as one line of JSON, for ``echo "matrix=..." >> "$GITHUB_OUTPUT"``."""
    return json.dumps(github_matrix(suites, pythons), separators=(",", ":"))
