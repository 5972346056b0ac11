"""signal_handler: handlers run in greenlets, several per signal, cancel restores Python's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Callable

import pytest

import greenpatch
from greenpatch import get_hub, getcurrent, sleep
from greenpatch.hub.signal import signal_handler


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Let the hub run until ``predicate()`` holds; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        sleep(0.01)
    return True


@pytest.fixture
def restore_signals():
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGUSR1, signal.SIGUSR2)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def test_handler_runs_in_a_new_greenlet_that_may_sleep(restore_signals):
    seen = []

    def handler():
        seen.append(("start", getcurrent()))
        sleep(0.01)  # would raise BlockingSwitchOutError in the hub itself
        seen.append(("slept", getcurrent()))

    handle = signal_handler(signal.SIGUSR1, handler)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert wait_for(lambda: len(seen) == 2)
    finally:
        handle.cancel()
    (_, first), (_, second) = seen
    assert isinstance(first, greenpatch.Greenlet)
    assert first is second
    assert first is not get_hub()


def test_handler_receives_its_arguments(restore_signals):
    calls = []
    handle = signal_handler(signal.SIGUSR1, lambda *a, **k: calls.append((a, k)), 1, 2, key="v")
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert wait_for(lambda: bool(calls))
    finally:
        handle.cancel()
    assert calls == [((1, 2), {"key": "v"})]


def test_every_handler_of_a_signal_runs(restore_signals):
    calls = []
    first = signal_handler(signal.SIGUSR2, calls.append, "first")
    second = signal_handler(signal.SIGUSR2, calls.append, "second")
    try:
        os.kill(os.getpid(), signal.SIGUSR2)
        assert wait_for(lambda: len(calls) == 2)
        assert calls == ["first", "second"]
        # Cancelling one leaves the other installed (libev keeps its C handler).
        first.cancel()
        os.kill(os.getpid(), signal.SIGUSR2)
        assert wait_for(lambda: len(calls) == 3)
        assert calls[2] == "second"
    finally:
        first.cancel()
        second.cancel()


def test_python_handler_is_bypassed_while_active_and_restored_by_cancel(restore_signals):
    python_calls = []
    green_calls = []

    def python_handler(signum, frame):
        python_calls.append(signum)

    signal.signal(signal.SIGUSR1, python_handler)
    handle = signal_handler(signal.SIGUSR1, green_calls.append, "green")
    try:
        # Python's table is not told about libev's C handler.
        assert signal.getsignal(signal.SIGUSR1) is python_handler
        os.kill(os.getpid(), signal.SIGUSR1)
        assert wait_for(lambda: bool(green_calls))
        assert python_calls == []
    finally:
        handle.cancel()
    assert not handle.active
    assert signal.getsignal(signal.SIGUSR1) is python_handler
    os.kill(os.getpid(), signal.SIGUSR1)
    assert wait_for(lambda: bool(python_calls))
    assert python_calls == [signal.SIGUSR1]
    assert green_calls == ["green"]


def test_cancel_is_idempotent_and_keeps_default_disposition_reported(restore_signals):
    signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    handle = signal_handler(signal.SIGUSR2, lambda: None)
    handle.cancel()
    handle.cancel()
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL


def test_cancel_puts_back_the_c_level_disposition():
    # libev resets a signal to SIG_DFL when its last watcher stops; for SIGUSR1
    # that kills the process, so this runs in a child interpreter.
    code = textwrap.dedent(
        """
        import os, signal, time
        from greenpatch import sleep
        from greenpatch.hub.signal import signal_handler

        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        calls = []
        handle = signal_handler(signal.SIGUSR1, calls.append, 1)
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 20
        while not calls and time.monotonic() < deadline:
            sleep(0.01)
        handle.cancel()
        os.kill(os.getpid(), signal.SIGUSR1)  # ignored again, not fatal
        sleep(0.05)
        print("survived", calls)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "survived [1]", (out.returncode, out.stderr)


def test_handler_may_cancel_itself(restore_signals):
    calls = []
    handles = []

    def handler():
        calls.append(1)
        handles[0].cancel()

    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    handles.append(signal_handler(signal.SIGUSR1, handler))
    os.kill(os.getpid(), signal.SIGUSR1)
    assert wait_for(lambda: not handles[0].active)
    assert calls == [1]
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN


@pytest.mark.timeout(20)  # a handler that kept the loop alive would hang wait()
def test_installed_handler_does_not_keep_the_loop_alive(restore_signals):
    handle = signal_handler(signal.SIGUSR2, lambda: None)
    try:
        assert greenpatch.wait() is True  # ran until nothing was left to do
    finally:
        handle.cancel()


def test_only_the_main_thread_may_install_handlers():
    errors = []

    def in_thread():
        try:
            signal_handler(signal.SIGUSR1, lambda: None)
        except ValueError as exc:
            errors.append(str(exc))
        finally:
            get_hub().destroy()

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(30)
    assert len(errors) == 1
    assert "main thread" in errors[0]


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, 0, 10_000])
def test_signals_that_cannot_be_handled_raise_value_error(signum):
    with pytest.raises(ValueError):
        signal_handler(signum, lambda: None)


def test_handler_must_be_callable():
    with pytest.raises(TypeError):
        signal_handler(signal.SIGUSR1, "not callable")  # type: ignore[arg-type]


def test_a_stop_keeping_disposition_leaves_the_handler_installed_just_before(restore_signals):
    hits: list[int] = []
    watcher = get_hub().loop.signal(signal.SIGUSR1)
    try:
        watcher.start(lambda: None)  # libev's handler is installed now
        signal.signal(signal.SIGUSR1, lambda signum, frame: hits.append(signum))
        watcher.keep_disposition = True
        watcher.stop()
        assert not watcher.active
        # A plain stop would have left SIG_DFL, which ends this process.
        os.kill(os.getpid(), signal.SIGUSR1)
        assert wait_for(lambda: hits == [signal.SIGUSR1])
    finally:
        watcher.close()
