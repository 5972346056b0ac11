"""Running test code in a fresh interpreter: the patcher's tests patch whole processes,
never the pytest one."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping


def _sigint_as_in_a_terminal() -> None:
    # The caller may ignore SIGINT (`cmd &` in a script, nohup, some CI
    # runners): a child inherits that, and Python then installs no
    # KeyboardInterrupt handler.  The tests' children start as from a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_script(
    script: str,
    *,
    returncode: int = 0,
    env: Mapping[str, str] | None = None,
    argv: list[str] | None = None,
) -> str:
    """Run ``script`` with ``python -W ignore -c`` (or ``argv``); its stdout, stripped.

    Fails with both streams when the exit status is not ``returncode``.
    """
    command = argv or [sys.executable, "-W", "ignore", "-c", script]
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        env=None if env is None else dict(env),
        preexec_fn=_sigint_as_in_a_terminal,
    )
    assert out.returncode == returncode, f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    return out.stdout.strip()
