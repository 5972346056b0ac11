"""Fixtures of the plugins' tests: a private PostgreSQL, and scripts run patched.

The PostgreSQL is the compat harness's own (``compat_tests/_postgresql.py``): a
fresh cluster on a free loopback port, started once per session (initdb takes
a few seconds) and only when a test asks for it; tests skip when its binaries
are not installed.  A PostgreSQL that may already run on this machine is never
used.

Patched behaviour runs in a fresh interpreter that calls ``patch_all()``
first (``run_patched``), never in the pytest process; the server's URL
reaches it in ``GP_TEST_PG_URL``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from greenpatch.compat_tests import _postgresql
from greenpatch.compat_tests.services import ServiceUnavailable
from tests.patcher._interpreter import run_script

URL_VARIABLE = "GP_TEST_PG_URL"

#: Put before every script: a hang kills the script (the test fails instead of
#: hanging), then greenpatch patches with the flags given, then a ticker that
#: tells whether other greenlets ran during a call.
PRELUDE = """\
import json, os, signal, sys, time
signal.alarm(45)
import greenpatch
greenpatch.patch_all({flags})
URL = os.environ[{variable!r}]
TICKS = []

def _tick():
    while True:
        TICKS.append(time.monotonic())
        time.sleep(0.01)

_ticker = greenpatch.spawn(_tick)
time.sleep(0)  # the ticker starts

def ticks_during(call, *args, **kwargs):
    '''(result or exception, seconds, ticks of the ticker while ``call`` ran).'''
    before, start = len(TICKS), time.monotonic()
    try:
        outcome = call(*args, **kwargs)
    except BaseException as exc:
        outcome = exc
    return outcome, time.monotonic() - start, len(TICKS) - before

def report(**values):
    print(json.dumps(values, default=repr))
"""


def _missing_postgresql() -> str | None:
    try:
        _postgresql.server_binaries()
        _postgresql.psql_binary()
    except ServiceUnavailable as exc:
        return str(exc)
    return None


@pytest.fixture(scope="session")
def postgresql_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``postgresql://postgres@127.0.0.1:PORT/postgres`` of a private server."""
    missing = _missing_postgresql()
    if missing:
        pytest.skip(missing)
    with _postgresql.postgresql_process(tmp_path_factory.mktemp("plugins-pg")) as (url, _):
        yield url


def run_patched(
    script: str, url: str, flags: str = "", prelude: bool = True, **env: str
) -> dict[str, Any]:
    """Run ``PRELUDE + script`` with ``patch_all(flags)`` (``prelude=False``: the
    script alone, which patches itself); the JSON of its last line of output."""
    source = PRELUDE.format(flags=flags, variable=URL_VARIABLE) + script if prelude else script
    out = run_script(source, env={**os.environ, URL_VARIABLE: url, **env})
    last = out.splitlines()[-1] if out else "{}"
    result: dict[str, Any] = json.loads(last)
    return result
