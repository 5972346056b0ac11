"""pytest's door to greenpatch: the ``greenpatch`` entry point of the ``pytest11`` group.

``pytest --greenpatch`` (or ``pytest -p greenpatch``) runs a test suite with
``greenpatch.patch_all()`` applied before any conftest.py or test module is
imported, and reports per test where the hub's loop stalled
(docs/pytest-plugin.md).

Why a package of its own, outside ``greenpatch``: pytest loads every ``pytest11``
entry point in every run of every project in the environment.  Importing
``greenpatch.anything`` runs ``greenpatch/__init__.py``, which loads the hub, cffi
and libev (tens of milliseconds, and a loaded extension in every test run on the
machine).  This module imports pytest alone; greenpatch is imported only when the
run asked for it.  Rejected: the entry point naming ``greenpatch.pytest_plugin``
(the hub in every pytest run) and a module for ``-p`` only (``-p greenpatch``
would then import the ``greenpatch`` package itself, which is no plugin, and
silently do nothing).

How the patch comes before collection: pytest imports ``-p`` plugins and entry
points, parses the command line a first time, then calls
``pytest_load_initial_conftests`` -- the first hook after which conftest.py
files, and later the test modules, are imported.  Our implementation runs first
(``tryfirst``) and patches there; see ``greenpatch.pytest_plugin.activate``.
"""

from __future__ import annotations

import argparse
from typing import Any

import pytest

__all__ = ["PLUGIN_NAME", "requested"]

#: The name the plugin is registered under: the entry point's, so ``-p greenpatch``
#: finds it and ``-p no:greenpatch`` blocks it.
PLUGIN_NAME = "greenpatch"

#: The harness's default (``greenpatch.compat_tests.stall.DEFAULT_THRESHOLD``), spelled
#: here so that ``--help`` does not import greenpatch; a test checks they agree.
DEFAULT_THRESHOLD_TEXT = "0.1"

#: Options that mean something only when the plugin is on: (flag, dest).
_DEPENDENT_OPTIONS = (
    ("--greenpatch-stall-threshold", "greenpatch_stall_threshold"),
    ("--greenpatch-strict", "greenpatch_strict"),
    ("--greenpatch-stalls", "greenpatch_stalls"),
    ("--greenpatch-without", "greenpatch_without"),
)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a positive number of seconds, e.g. {DEFAULT_THRESHOLD_TEXT}"
        )
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "greenpatch", "greenpatch: run the tests patched and report loop stalls"
    )
    group.addoption(
        "--greenpatch",
        action="store_true",
        default=False,
        dest="greenpatch",
        help="apply greenpatch.patch_all() before conftest.py files and test modules are "
        "imported, and report per test where the hub's loop stalled (same as -p greenpatch)",
    )
    group.addoption(
        "--greenpatch-stall-threshold",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        dest="greenpatch_stall_threshold",
        help=f"a stall is the loop held for longer than this (default {DEFAULT_THRESHOLD_TEXT})",
    )
    group.addoption(
        "--greenpatch-strict",
        action="store_true",
        default=False,
        dest="greenpatch_strict",
        help="a test that stalled the loop (in setup or call) fails",
    )
    group.addoption(
        "--greenpatch-stalls",
        default=None,
        metavar="PATH",
        dest="greenpatch_stalls",
        help="also write every stall record to PATH, one JSON object a line",
    )
    group.addoption(
        "--greenpatch-without",
        action="append",
        default=None,  # None, not []: "not given" is how a stray option is told
        metavar="FLAG",
        dest="greenpatch_without",
        help="leave this patch_all flag out, a plugin's included (e.g. zmq; see "
        "`greenpatch patches`); repeatable",
    )


def requested(config: pytest.Config) -> bool:
    """Whether this run asked for greenpatch: ``--greenpatch``, or ``-p greenpatch``
    (on the command line, in ``addopts`` or in ``PYTEST_ADDOPTS``).  Being loaded
    is not asking: the entry point is loaded in every pytest run."""
    namespace: Any = config.known_args_namespace
    if getattr(namespace, "greenpatch", False):
        return True
    plugins = getattr(namespace, "plugins", None) or []
    return any(str(name).strip() == PLUGIN_NAME for name in plugins)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    namespace: Any = early_config.known_args_namespace
    if getattr(namespace, "help", False) or getattr(namespace, "version", False):
        return
    if not requested(early_config):
        return
    from greenpatch.pytest_plugin import activate

    activate(early_config)


def pytest_configure(config: pytest.Config) -> None:
    if requested(config):
        return
    stray = [
        flag for flag, dest in _DEPENDENT_OPTIONS if config.getoption(dest) not in (None, False)
    ]
    if stray:
        raise pytest.UsageError(
            f"{', '.join(stray)}: greenpatch's pytest plugin is off in this run; "
            "add --greenpatch (or -p greenpatch)"
        )
