"""The CI matrix: tox env names and the GitHub Actions matrix agree, and the
workflow in docs/ci.md reads the keys the matrix has."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from greenpatch.reports.matrix import (
    DEFAULT_PYTHONS,
    format_github_matrix,
    github_matrix,
    tox_env_name,
    tox_envs,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "ci.md"


def test_tox_env_names_follow_tox_ini() -> None:
    assert tox_env_name("redis", "3.10") == "compat-redis-py310"
    assert tox_envs(["requests", "redis"], ["3.9", "3.13"]) == [
        "compat-requests-py39",
        "compat-requests-py313",
        "compat-redis-py39",
        "compat-redis-py313",
    ]
    assert len(tox_envs(["requests", "redis"])) == 2 * len(DEFAULT_PYTHONS)


def test_github_matrix_is_one_include_per_cell() -> None:
    matrix = json.loads(format_github_matrix(["requests", "redis"]))
    assert matrix == github_matrix(["requests", "redis"])
    assert len(matrix["include"]) == 10
    assert matrix["include"][0] == {
        "suite": "requests",
        "version": "latest",
        "python": "3.9",
        "toxenv": "compat-requests-py39",
        "posargs": "",
    }
    assert "\n" not in format_github_matrix(["requests"])  # one line for $GITHUB_OUTPUT


def test_release_lines_are_an_axis_run_through_the_same_tox_env() -> None:
    matrix = github_matrix({"redis": ["latest", "5.*"], "my-suite": []}, ["3.11"])
    assert [(c["suite"], c["version"], c["toxenv"], c["posargs"]) for c in matrix["include"]] == [
        ("redis", "latest", "compat-redis-py311", ""),
        ("redis", "5.*", "compat-redis-py311", "--version 5.*"),
        ("my-suite", "latest", "compat-my_suite-py311", ""),
    ]


def test_a_dash_in_a_suite_name_becomes_an_underscore_in_its_tox_factor() -> None:
    assert tox_env_name("websocket-client", "3.12") == "compat-websocket_client-py312"


@pytest.mark.parametrize("suite", ["a.b", "", "a b"])
def test_suite_names_that_tox_would_split_are_refused(suite: str) -> None:
    with pytest.raises(ValueError, match="tox factor"):
        tox_env_name(suite, "3.12")


def test_odd_python_versions_are_refused() -> None:
    with pytest.raises(ValueError, match=r"expected a version like 3\.12"):
        tox_env_name("redis", "312")


def test_an_empty_matrix_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        github_matrix([])


def test_the_documented_workflow_uses_the_matrix_keys() -> None:
    text = DOCS.read_text(encoding="utf-8")
    workflow = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert workflow is not None, "docs/ci.md has no ```yaml block"
    used = set(re.findall(r"(?<![\w.])matrix\.(\w+)", workflow.group(1)))
    assert used and used <= set(github_matrix(["redis"])["include"][0])
    assert "greenpatch compat matrix --github" in workflow.group(1)
    assert "tox -e ${{ matrix.toxenv }}" in workflow.group(1)
