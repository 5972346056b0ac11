"""tox.ini has one env per built-in suite and Python, each running its own suite."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from greenpatch.compat_tests.manifest import builtin_suites
from greenpatch.reports.matrix import DEFAULT_PYTHONS, tox_env_name

TOX_INI = Path(__file__).resolve().parents[2] / "tox.ini"


def _compat_section() -> tuple[list[str], list[str], configparser.SectionProxy]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(TOX_INI)
    (name,) = [s for s in parser.sections() if re.fullmatch(r"testenv:compat-\{.*\}-py\{.*\}", s)]
    suites, pythons = re.fullmatch(r"testenv:compat-\{(.*)\}-py\{(.*)\}", name).groups()  # type: ignore[union-attr]
    return suites.split(","), pythons.split(","), parser[name]


def test_every_builtin_suite_has_its_tox_envs_and_no_other() -> None:
    factors, pythons, _ = _compat_section()
    assert sorted(factors) == sorted(name.replace("-", "_") for name in builtin_suites())
    assert pythons == [python.replace(".", "") for python in DEFAULT_PYTHONS]
    envs = {f"compat-{factor}-py{python}" for factor in factors for python in pythons}
    assert {tox_env_name(suite, "3.12") for suite in builtin_suites()} <= envs


def test_each_env_runs_its_own_suite_into_its_own_cache() -> None:
    factors, _, section = _compat_section()
    commands = {}
    for line in section["commands"].strip().splitlines():
        factor, _, command = line.partition(":")
        commands[factor.strip()] = command.strip()
    assert sorted(commands) == sorted(factors)
    for suite in builtin_suites():
        command = commands[suite.replace("-", "_")]
        assert command.startswith(f"greenpatch compat run {suite} --out ")
        assert "--cache-dir {work_dir}{/}.compat-cache{/}{env_name}" in command
        assert command.endswith("{posargs}")  # -- --version 5.* reaches the harness
