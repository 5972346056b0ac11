"""``signal.signal`` in a patched thread raises what it raises in a thread
unpatched: a patched thread is not the main thread, although it runs on the
main OS thread.  Greenlets that are not threads count as the main thread.

trio asks ``signal.signal`` whether it runs in the main thread; two trio loops
in patched threads (urllib3's hypercorn test servers) each believed so, each
took ``signal.set_wakeup_fd``, and the second warned of a collision -- an
error under ``-W error``, where urllib3's suite runs.
"""

from __future__ import annotations

import pytest

from tests.patcher._interpreter import run_script

WHERE_SIGNAL_WORKS = """
import greenpatch
greenpatch.patch_all()
import signal, threading

def install():
    try:
        signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    except ValueError as exc:
        return str(exc)
    return "installed"

in_thread = []
thread = threading.Thread(target=lambda: in_thread.append(install()))
thread.start()
thread.join()
print(install())
print(in_thread[0])
print(greenpatch.spawn(install).get())
"""


def test_signal_raises_in_a_patched_thread_as_in_a_thread() -> None:
    assert run_script(WHERE_SIGNAL_WORKS).splitlines() == [
        "installed",  # the main thread
        "signal only works in main thread of the main interpreter",
        "installed",  # a greenlet of the main thread, not a thread
    ]


TWO_TRIO_LOOPS = """
import signal
signal.alarm(30)  # a hang kills the process: the test fails instead of hanging
import warnings
warnings.simplefilter("error")  # trio's collision warning is an error, as under -W error
import greenpatch
greenpatch.patch_all()
import threading
import trio

results = []
both_running = threading.Barrier(2)

def run_loop():
    async def main():
        await trio.to_thread.run_sync(both_running.wait)  # overlap for sure
    try:
        trio.run(main)
        results.append("ok")
    except BaseException as exc:
        results.append(f"{type(exc).__name__}: {exc.__cause__!r}")

threads = [threading.Thread(target=run_loop) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(results)
"""


def test_two_trio_loops_in_patched_threads_do_not_collide_over_signals() -> None:
    pytest.importorskip("trio")
    assert run_script(TWO_TRIO_LOOPS) == "['ok', 'ok']"
