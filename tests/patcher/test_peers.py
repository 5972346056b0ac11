"""Another green library in a patched process: gevent imports the unpatched stdlib.

Every script runs in a fresh interpreter and arms ``faulthandler`` so that a
hang (gevent's hub waiting for a worker that is a greenpatch greenlet) ends the
script with a traceback instead of blocking the test run.
"""

from __future__ import annotations

import textwrap

import pytest

from tests.patcher._interpreter import run_script

pytest.importorskip("gevent")

GUARD = """
import faulthandler, sys
faulthandler.dump_traceback_later(30, exit=True)   # a hang fails, with a traceback
"""


def run(code: str) -> str:
    return run_script(GUARD + textwrap.dedent(code))


def test_gevents_thread_pool_runs_real_threads_in_a_patched_process():
    out = run(
        """
        import warnings
        warnings.simplefilter("ignore")
        import greenpatch
        greenpatch.patch_all()
        import gevent
        hub = gevent.get_hub()
        print(hub.threadpool.apply(lambda: 5))          # hung: the worker was a greenlet
        native_id = greenpatch.original("threading", "get_native_id")
        workers = {hub.threadpool.apply(native_id) for _ in range(3)}
        print(native_id() not in workers)                # real OS threads, not this one
        jobs = [hub.threadpool.spawn(pow, 2, i) for i in range(8)]
        gevent.joinall(jobs, raise_error=True)
        print([job.value for job in jobs])
        """
    )
    assert out.splitlines() == ["5", "True", "[1, 2, 4, 8, 16, 32, 64, 128]"]


def test_gevent_binds_the_original_thread_primitives_and_the_program_keeps_the_patched_ones():
    out = run(
        """
        import warnings
        warnings.simplefilter("ignore")
        import greenpatch
        greenpatch.patch_all()
        import _thread, threading, time
        import gevent, gevent.hub, gevent.threadpool, gevent._threading, gevent._hub_local
        original = greenpatch.original
        print(gevent.hub.get_thread_ident is original("_thread", "get_ident"),
              gevent._threading.start_new_thread is original("_thread", "start_new_thread"),
              gevent._hub_local._Threadlocal.__mro__[1] is original("_thread", "_local"))
        # Modules gevent's import brought in first were executed among the real,
        # patched modules: they stay cooperative for the program.
        import concurrent.futures.thread, logging
        print(concurrent.futures.thread.threading is threading,
              type(logging._lock) is type(threading.RLock()),
              sys.modules["_thread"] is _thread and sys.modules["time"] is time,
              _thread.start_new_thread is not original("_thread", "start_new_thread"))
        """
    )
    assert out.splitlines() == ["True True True", "True True True True"]


def test_importing_gevent_into_a_patched_process_says_once_what_will_not_work():
    out = run(
        """
        import warnings
        import greenpatch
        from greenpatch.patcher.diagnostics import GreenpatchWarning
        greenpatch.patch_all()
        import importlib.util
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert importlib.util.find_spec("gevent") is not None   # an optional-dependency check
        print(len(caught))                              # imports nothing: says nothing
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import gevent
            import gevent.threadpool, gevent.socket, gevent.queue
        messages = [str(w.message) for w in caught if issubclass(w.category, GreenpatchWarning)]
        print(len(messages))
        print("take turns" in messages[0] and "Other green libraries" in messages[0])
        print(caught[0].filename == "<string>")         # points at the import statement
        """
    )
    assert out.splitlines() == ["0", "1", "True", "True"]


def test_gevent_imported_before_patch_all_still_gets_real_threads():
    out = run(
        """
        import warnings
        import gevent                                   # gevent.threadpool not yet imported
        import greenpatch
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            greenpatch.patch_all()
        print(sum("take turns" in str(w.message) for w in caught))
        print(gevent.get_hub().threadpool.apply(lambda: 7))
        """
    )
    assert out.splitlines() == ["1", "7"]


def test_an_unpatched_process_is_left_alone():
    out = run(
        """
        import warnings
        warnings.simplefilter("error")
        import greenpatch
        from greenpatch.patcher import peers
        import gevent
        print(peers.installed(), gevent.get_hub().threadpool.apply(lambda: 3))
        """
    )
    assert out == "False 3"
