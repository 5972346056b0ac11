"""greenpatch.threadpool's run_in_thread, @blocking and ThreadedConnection: C-level
blocking calls on worker threads while the hub keeps running.

The blocking calls are real C: libc's ``usleep`` through ctypes, the stdlib's
own ``time.sleep`` (``original``: the patch does not reach it), and sqlite3, a C
driver whose busy handler waits inside the library while another connection
holds the database.  Each scenario runs here, unpatched, and again in a
``patch_all()``-ed interpreter (``test_the_scenarios_hold_under_the_patch``).
"""

from __future__ import annotations

import _thread
import ctypes
import json
import sqlite3
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import pytest

import greenpatch
from greenpatch import Event, Timeout, get_hub, joinall, original, sleep, spawn
from greenpatch.threadpool import (
    ThreadedConnection,
    ThreadPool,
    ThreadPoolExecutor,
    blocking,
    run_in_thread,
)

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0  # generous bound for anything that should happen promptly
CALLS, SECONDS = 20, 0.3  # 20 calls of 0.3 s: 6 s one after the other


def _c_sleep(kind: str) -> Callable[[float], Any]:
    """A call that waits in C without giving the hub a turn."""
    if kind == "usleep":
        usleep = ctypes.CDLL(None).usleep
        usleep.argtypes = [ctypes.c_uint]
        return lambda seconds: usleep(int(seconds * 1_000_000))
    return original("time", "sleep")  # type: ignore[no-any-return]


def _with_ticker(work: Callable[[], Any]) -> dict[str, Any]:
    """Run ``work()`` while a ticker greenlet counts its 20 ms sleeps."""
    ticks = [0]
    stop = Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks[0] += 1
            sleep(0.02)

    glet = spawn(ticker)
    started = time.monotonic()
    try:
        value = work()
    finally:
        wall = time.monotonic() - started
        stop.set()
        glet.join(WAIT)
    return {"value": value, "wall": wall, "ticks": ticks[0]}


def _in_greenlets(call: Callable[[], Any], count: int = CALLS) -> list[Any]:
    tasks = [spawn(call) for _ in range(count)]
    joinall(tasks, timeout=WAIT)
    return [task.value if task.successful() else repr(task.exception) for task in tasks]


# -- the scenarios (also run patched, in a subprocess) --------------------------------
def overlap(kind: str) -> dict[str, Any]:
    """20 greenlets, each one C-level 0.3 s wait through run_in_thread."""
    wait = _c_sleep(kind)
    return _with_ticker(lambda: _in_greenlets(lambda: run_in_thread(wait, SECONDS) or "done"))


def locked_database(directory: str) -> dict[str, Any]:
    """20 greenlets, each its own sqlite3 connection, each INSERT waiting 0.3 s
    in sqlite's busy handler (C) for a database another connection holds."""
    path = str(Path(directory) / "locked.sqlite")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")

    def insert() -> str:
        conn = ThreadedConnection.connect(
            sqlite3.connect, path, timeout=SECONDS, check_same_thread=False
        )
        try:
            conn.execute("INSERT INTO t VALUES (1)")
        except conn.OperationalError as exc:  # the driver's class, not a proxy
            return f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        return "inserted"

    try:
        return _with_ticker(lambda: _in_greenlets(insert))
    finally:
        holder.rollback()
        holder.close()


def serialised() -> dict[str, Any]:
    """Calls on one connection from 8 greenlets, calls on 8 connections at once:
    how many ran at the same time, and in what order."""
    gauge = _Gauge()

    def connection() -> ThreadedConnection:
        conn = ThreadedConnection.connect(sqlite3.connect, ":memory:", check_same_thread=False)
        conn.create_function("slow", 2, gauge.slow)
        return conn

    shared = connection()

    def on_shared(tag: int) -> Any:
        return shared.execute("SELECT slow(?, 0.05)", (tag,)).fetchone()[0]

    tasks = [spawn(on_shared, tag) for tag in range(8)]
    joinall(tasks, timeout=WAIT, raise_error=True)
    one = {"peak": gauge.peak, "order": gauge.starts(), "values": [t.value for t in tasks]}
    gauge.reset()
    own = [connection() for _ in range(8)]
    tasks = [
        spawn(lambda c, tag: c.execute("SELECT slow(?, 0.2)", (tag,)).fetchone()[0], conn, tag)
        for tag, conn in enumerate(own)
    ]
    joinall(tasks, timeout=WAIT, raise_error=True)
    for conn in [shared, *own]:
        conn.close()
    return {"one_connection": one, "many_peak": gauge.peak}


class _Gauge:
    """An SQL function that holds its worker for a while and records how many
    such calls run at once (from the worker threads: a real lock)."""

    def __init__(self) -> None:
        self.lock = _thread.allocate_lock()
        self.wait = original("time", "sleep")
        self.reset()

    def reset(self) -> None:
        self.active = self.peak = 0
        self.log: list[tuple[str, Any]] = []

    def slow(self, tag: Any, seconds: float) -> Any:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.log.append(("start", tag))
        self.wait(seconds)
        with self.lock:
            self.active -= 1
            self.log.append(("end", tag))
        return tag

    def starts(self) -> list[Any]:
        return [tag for kind, tag in self.log if kind == "start"]


# -- overlap, ticking, real C ---------------------------------------------------------
@pytest.mark.parametrize("kind", ["usleep", "time.sleep"])
def test_c_level_waits_in_twenty_greenlets_overlap_and_the_hub_keeps_ticking(kind: str) -> None:
    outcome = overlap(kind)
    assert outcome["value"] == ["done"] * CALLS
    assert outcome["wall"] < 3.0, outcome  # one after the other: 6 s
    assert outcome["ticks"] >= 5, outcome


def test_the_same_waits_made_directly_stop_the_ticker() -> None:
    # The control: without a thread each wait holds the hub, and the ticker starves.
    wait = _c_sleep("usleep")
    outcome = _with_ticker(lambda: _in_greenlets(lambda: wait(SECONDS), count=2))
    assert outcome["wall"] >= 2 * SECONDS
    assert outcome["ticks"] <= 3, outcome


def test_a_c_driver_waiting_for_a_lock_runs_in_threads_and_its_errors_reach_the_caller(
    tmp_path: Path,
) -> None:
    outcome = locked_database(str(tmp_path))
    assert outcome["value"] == ["OperationalError: database is locked"] * CALLS
    assert outcome["wall"] < 3.0, outcome
    assert outcome["ticks"] >= 5, outcome


def test_the_scenarios_hold_under_the_patch(tmp_path: Path) -> None:
    code = (
        "import json, sys, greenpatch\n"
        "greenpatch.patch_all()\n"
        "from tests.hub import test_offload as t\n"
        "print(json.dumps([t.overlap('usleep'), t.locked_database(sys.argv[1]), t.serialised(),"
        " greenpatch.is_patched('threading')]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        cwd=str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    waits, database, order, patched = json.loads(done.stdout.splitlines()[-1])
    assert patched
    assert waits["value"] == ["done"] * CALLS and waits["wall"] < 3.0 and waits["ticks"] >= 5
    assert database["value"] == ["OperationalError: database is locked"] * CALLS
    assert database["wall"] < 3.0 and database["ticks"] >= 5
    assert order["one_connection"]["peak"] == 1 and order["many_peak"] >= 2


# -- run_in_thread --------------------------------------------------------------------
def _raise_from_the_worker() -> None:
    raise ValueError(f"raised in thread {_thread.get_ident()}")


def test_an_exception_reaches_the_caller_with_the_worker_frames() -> None:
    with pytest.raises(ValueError, match="raised in thread") as info:
        run_in_thread(_raise_from_the_worker)
    assert str(_thread.get_ident()) not in str(info.value)
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert names[0] == "test_an_exception_reaches_the_caller_with_the_worker_frames"
    assert names[-1] == "_raise_from_the_worker"


def test_a_timeout_abandons_the_wait_and_the_call_runs_to_its_end() -> None:
    finished = Event()
    wait = _c_sleep("usleep")

    def call() -> None:
        wait(SECONDS)
        finished.set()  # Event.set: safe from any thread

    with pytest.raises(Timeout):
        with Timeout(0.05):
            run_in_thread(call)
    assert not finished.is_set()  # the greenlet is back; the call is still running
    assert finished.wait(WAIT)


def test_arguments_and_results_pass_through() -> None:
    assert run_in_thread(divmod, 17, 5) == (3, 2)
    assert run_in_thread(sorted, [3, 1, 2], reverse=True) == [3, 2, 1]
    assert run_in_thread(dict, func=1) == {"func": 1}  # no keyword of ours in the way


def test_in_the_hub_greenlet_the_call_runs_inline() -> None:
    seen: list[int] = []
    ran = Event()

    def callback() -> None:
        seen.append(run_in_thread(_thread.get_ident))
        ran.set()

    get_hub().loop.run_callback(callback)
    assert ran.wait(WAIT)
    assert seen == [_thread.get_ident()]


# -- @blocking ------------------------------------------------------------------------
@blocking
def _where(tag: str) -> tuple[int, str]:
    """Return the thread it ran in."""
    return _thread.get_ident(), tag


class _Service:
    @blocking
    def where(self, tag: str) -> tuple[int, str]:
        return _thread.get_ident(), tag


def test_blocking_runs_every_call_on_a_worker_and_keeps_the_function_s_name() -> None:
    ident, tag = _where("a")
    assert ident != _thread.get_ident() and tag == "a"
    assert _where.__name__ == "_where" and _where.__doc__ == "Return the thread it ran in."
    ident, tag = _Service().where("b")
    assert ident != _thread.get_ident() and tag == "b"


def test_blocking_with_a_pool_of_its_own() -> None:
    pool = ThreadPool(maxsize=1)
    idents: set[int] = set()

    @blocking(pool=lambda: pool)
    def where() -> int:
        return _thread.get_ident()

    try:
        results = _in_greenlets(where, count=6)
        idents.update(results)
        assert len(idents) == 1 and _thread.get_ident() not in idents
    finally:
        pool.kill()


# -- ThreadedConnection ---------------------------------------------------------------
def test_one_connection_runs_one_call_at_a_time_in_the_order_asked() -> None:
    outcome = serialised()
    one = outcome["one_connection"]
    assert one["peak"] == 1
    assert one["order"] == list(range(8)) and one["values"] == list(range(8))
    assert outcome["many_peak"] >= 2  # different connections overlap


def test_a_call_abandoned_by_a_timeout_keeps_the_connection_until_it_ends() -> None:
    gauge = _Gauge()
    conn = ThreadedConnection.connect(sqlite3.connect, ":memory:", check_same_thread=False)
    conn.create_function("slow", 2, gauge.slow)
    with pytest.raises(Timeout):
        with Timeout(0.05):
            conn.execute("SELECT slow('abandoned', 0.3)")
    assert ("end", "abandoned") not in gauge.log
    assert conn.execute("SELECT slow('next', 0)").fetchone() == ("next",)
    assert gauge.log == [
        ("start", "abandoned"),
        ("end", "abandoned"),
        ("start", "next"),
        ("end", "next"),
    ]
    conn.close()


def test_a_threaded_connection_works_as_the_driver_s_own() -> None:
    conn = ThreadedConnection.connect(sqlite3.connect, ":memory:", check_same_thread=False)
    assert conn.OperationalError is sqlite3.OperationalError  # classes are not wrapped
    assert isinstance(conn.__wrapped__, sqlite3.Connection)
    conn.isolation_level = None  # assignments go through the connection's turn
    assert conn.__wrapped__.isolation_level is None
    conn.isolation_level = ""
    with conn:  # the driver's transaction: commit at the end
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(250)])
    assert conn.in_transaction is False
    cursor = conn.cursor()
    assert cursor.execute("SELECT x FROM t ORDER BY x") is cursor  # fluent: the proxy again
    assert [row[0] for row in cursor] == list(range(250))  # iterated in batches
    assert cursor.rowcount == -1 and cursor.description[0][0] == "x"
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        conn.execute("SELECT * FROM missing")
    conn.close()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        conn.execute("SELECT 1")


def test_a_driver_that_wants_one_thread_gets_a_pool_of_one() -> None:
    # sqlite3's default check_same_thread: every call in the thread that connected.
    pool = ThreadPool(maxsize=1, idle_timeout=3600)
    try:
        conn = ThreadedConnection(pool.apply(sqlite3.connect, (":memory:",)), pool=pool)
        values = _in_greenlets(lambda: conn.execute("SELECT 42").fetchone()[0], count=5)
        assert values == [42] * 5
        conn.close()
    finally:
        pool.shutdown()


def test_a_threaded_connection_refuses_the_hub_greenlet() -> None:
    conn = ThreadedConnection.connect(sqlite3.connect, ":memory:", check_same_thread=False)
    errors: list[BaseException] = []
    ran = Event()

    def callback() -> None:
        try:
            conn.execute("SELECT 1")
        except RuntimeError as exc:
            errors.append(exc)
        ran.set()

    get_hub().loop.run_callback(callback)
    assert ran.wait(WAIT)
    assert "called in the hub greenlet" in str(errors[0])
    conn.close()


def test_the_public_module_names_the_hub_s_pools() -> None:
    assert ThreadPool is greenpatch.ThreadPool
    assert ThreadPoolExecutor.__module__ == "greenpatch.hub.executor"
    with pytest.raises(TypeError, match="threaded already"):
        ThreadedConnection(ThreadedConnection(sqlite3.connect(":memory:")))
