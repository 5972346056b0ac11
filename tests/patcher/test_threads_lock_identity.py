"""The green ``_thread`` types pass for the stdlib's where code checks (issue 18, pattern 3).

Other event loops run inside a patched process and look at the lock they were
given: trio asserts that ``threading.RLock()``'s class comes from ``_thread``
(the signal-safe C lock), and anyio's blocking portal runs trio or asyncio in a
thread that the main thread calls into.  Each check runs in a fresh interpreter.
"""

from __future__ import annotations

import pytest

from tests.patcher._interpreter import run_script

PATCH = "import greenpatch\ngreenpatch.patch_all(warn_late=False)\n"
#: A hang must fail the test, not stall the suite: faulthandler's C watchdog
#: dumps the stacks and exits even when no green thread ever yields.
WATCHDOG = "import faulthandler\nfaulthandler.dump_traceback_later(30, exit=True)\n"


def test_lock_types_present_themselves_as_the_stdlib_types():
    out = run_script(
        PATCH
        + """
import _thread, copy, pickle, threading
checks = []
lock, rlock, local = threading.Lock(), threading.RLock(), threading.local()
for obj, module_name, name in (
    (lock, "_thread", "lock"), (rlock, "_thread", "RLock"), (local, "_thread", "_local"),
):
    cls = type(obj)
    checks.append((name, cls.__module__ == module_name, cls.__name__ == name,
                   cls.__qualname__ == name))
    for dump in (pickle.dumps, copy.copy, copy.deepcopy):
        try:
            dump(obj)
        except TypeError as exc:
            checks.append((name, dump.__name__, str(exc)))
        else:
            checks.append((name, dump.__name__, "no error"))
# type() identity: what threading hands out is what _thread exports.
checks.append(type(lock) is _thread.LockType and type(rlock) is _thread.RLock)
checks.append(type(local) is _thread._local is threading.local)
# The functions threading took from _thread say so too (CPython's test__all__).
checks.append(threading.get_ident.__module__ == _thread.start_new_thread.__module__ == "_thread")
# Condition finds the RLock's owner check, as with the C RLock.
checks.append(hasattr(rlock, "_is_owned") and not rlock._is_owned())
with rlock:
    checks.append(rlock._is_owned())
for check in checks:
    print(check)
"""
    )
    lines = out.splitlines()
    for name in ("lock", "RLock", "_local"):
        assert f"('{name}', True, True, True)" in lines
        for dump in ("dumps", "copy", "deepcopy"):
            assert f"('{name}', '{dump}', \"cannot pickle '_thread.{name}' object\")" in lines
    assert lines[-5:] == ["True"] * 5


def test_trio_runs_in_a_patched_process():
    pytest.importorskip("trio")
    out = run_script(
        WATCHDOG
        + PATCH
        + """
import trio

async def main():
    await trio.sleep(0)
    return await trio.to_thread.run_sync(lambda: "from a worker thread")

print(trio.run(main))
"""
    )
    assert out == "from a worker thread"


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_anyio_blocking_portal_in_a_patched_process(backend):
    pytest.importorskip("anyio")
    if backend == "trio":
        pytest.importorskip("trio")
    out = run_script(
        WATCHDOG
        + PATCH
        + f"""
import threading
import anyio
from anyio.from_thread import start_blocking_portal

async def add(a, b):
    await anyio.sleep(0.01)
    return a + b, threading.current_thread() is not threading.main_thread()

with start_blocking_portal(backend={backend!r}) as portal:
    print(portal.call(add, 1, 2))
    print(portal.call(lambda: "sync call"))
print("portal closed", threading.active_count())
"""
    )
    assert out.splitlines() == ["(3, True)", "sync call", "portal closed 1"]
