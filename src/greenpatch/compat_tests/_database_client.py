"""The database services' command-line clients: one run, a readiness query, setup.

``_postgresql.py`` and ``_mariadb.py`` each build their client's command line
(psql, mariadb); what they do with it is the same, and lives here.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

from greenpatch.compat_tests.services import ServiceUnavailable, describe_exit, masked

__all__ = ["run_client", "run_statements", "select_one_answer"]


def run_client(
    command: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """A database's command-line client, run once; a timeout is an answer too
    (return code -1), so that the caller's message says what happened."""
    try:
        return subprocess.run(
            command,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, -1, "", f"no answer within {timeout:.0f} s")


def select_one_answer(done: subprocess.CompletedProcess[str], client: str) -> str | None:
    """None when ``select 1`` answered 1; else the client's complaint."""
    if done.returncode == 0 and done.stdout.strip() == "1":
        return None
    return (
        done.stderr.strip() or f"{client} {describe_exit(done.returncode)}: {done.stdout.strip()}"
    )


def run_statements(
    query: Callable[[str, str], subprocess.CompletedProcess[str]],
    url: str,
    statements: Sequence[str],
    label: str,
) -> None:
    """Each statement on its own (CREATE DATABASE cannot share a transaction),
    so that a failure names the one that failed."""
    for statement in statements:
        done = query(url, statement)
        if done.returncode != 0:
            raise ServiceUnavailable(
                f"setup statement {statement!r} failed on {label} at {masked(url)}: "
                f"{done.stderr.strip() or describe_exit(done.returncode)}"
            )
