"""``greenpatch.subprocess``: a ``Popen`` whose waits and pipes block only the
calling greenlet, as ``gevent.subprocess``.

``Popen`` is the patcher's green twin (what ``patch_all()`` puts into
:mod:`subprocess`); ``call``, ``check_output``, ``run`` here are built on it,
and the rest (``PIPE``, ``CalledProcessError``, ...) is the standard library's.
"""

from __future__ import annotations

import subprocess as _stdlib
from typing import Any

from greenpatch.patcher.green.subprocess import Popen

PIPE = _stdlib.PIPE
STDOUT = _stdlib.STDOUT
DEVNULL = _stdlib.DEVNULL
CalledProcessError = _stdlib.CalledProcessError
TimeoutExpired = _stdlib.TimeoutExpired
CompletedProcess = _stdlib.CompletedProcess

__all__ = [
    "DEVNULL",
    "PIPE",
    "STDOUT",
    "CalledProcessError",
    "CompletedProcess",
    "Popen",
    "TimeoutExpired",
    "call",
    "check_call",
    "check_output",
    "run",
]


def run(
    *popenargs: Any,
    input: Any = None,
    timeout: float | None = None,
    check: bool = False,
    **kwargs: Any,
) -> CompletedProcess[Any]:
    """``subprocess.run`` on the cooperative ``Popen``."""
    if input is not None:
        if kwargs.get("stdin") is not None:
            raise ValueError("stdin and input arguments may not both be used.")
        kwargs["stdin"] = PIPE
    with Popen(*popenargs, **kwargs) as process:
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except BaseException:
            process.kill()
            raise
        code = process.poll()
        assert code is not None
        if check and code:
            raise CalledProcessError(code, process.args, output=stdout, stderr=stderr)
    return CompletedProcess(process.args, code, stdout, stderr)


def call(*popenargs: Any, timeout: float | None = None, **kwargs: Any) -> int:
    """``subprocess.call`` on the cooperative ``Popen``."""
    with Popen(*popenargs, **kwargs) as process:
        try:
            return process.wait(timeout=timeout)
        except BaseException:
            process.kill()
            raise


def check_call(*popenargs: Any, **kwargs: Any) -> int:
    """``subprocess.check_call`` on the cooperative ``Popen``."""
    code = call(*popenargs, **kwargs)
    if code:
        command: Any = kwargs.get("args", popenargs[0] if popenargs else "")
        raise CalledProcessError(code, command)
    return 0


def check_output(*popenargs: Any, timeout: float | None = None, **kwargs: Any) -> Any:
    """``subprocess.check_output`` on the cooperative ``Popen``."""
    if "stdout" in kwargs:
        raise ValueError("stdout argument not allowed, it will be overridden.")
    return run(*popenargs, stdout=PIPE, timeout=timeout, check=True, **kwargs).stdout


def __getattr__(name: str) -> Any:
    return getattr(_stdlib, name)
