"""The loop-stall monitor: a real OS thread that notices when a hub could not run.

What counts as a stall
----------------------
The loop counts its iterations (``Loop.iterations``) and says when it waits in
the kernel (``Loop.polling``).  A healthy hub either iterates or sits in epoll.
When, for longer than ``threshold`` seconds, the count does not move *and* the
loop is not polling, something in the hub's OS thread holds it: a blocking call
that was not patched, or a long stretch of CPU work.  That stretch is one stall
*episode*; it produces one record, written when the hub runs again (or when the
monitor stops), with the stack of the hub's thread taken when the threshold was
crossed.

The monitor thread samples both numbers every ``interval`` seconds (a fifth of
the threshold by default), so a reported duration is within one interval of the
truth; the start is taken at the last sample that still saw progress, so short
stalls are never over-reported.  Stalls are split at test boundaries: when
``current_test`` changes, the episode so far is recorded under the old test and a
new one may begin under the new test.

Why a counter read from outside (rejected alternatives)
-------------------------------------------------------
- ``sys.setprofile``/``settrace`` in the hub thread: a cost on every call of the
  program being measured, and a trace function runs *in* the watched thread, so
  it cannot notice that thread being stuck inside one C call, which is exactly
  the blocking case we are after.
- ``SIGALRM``/``setitimer`` (or ``faulthandler.dump_traceback_later``): handlers
  run only in the main thread, between bytecodes, interrupt the program's own
  system calls with EINTR, and collide with programs and test suites that use
  ``SIGALRM`` themselves (pytest-timeout does).
- A heartbeat timer on the loop: one wake-up per period for ever, even in an idle
  process.  ``iterations`` and ``polling`` are kept by the loop anyway, and cost
  the watched thread nothing more.
- ``Hub.switch_hooks``: a Python call on the hottest path of the scheduler; a
  greenlet that never switches is visible in the loop counter all the same.

The monitor must be a real OS thread even in a patched process, where
``threading`` and ``_thread`` may be green: a green "monitor" would run on the
very hub it watches and could never see it blocked.  It is started with the
original ``_thread`` functions, looked up through ``greenpatch.patcher.original``
at ``start()`` (that reaches the unpatched objects whether patching happened
before or after this module was imported).

Limits: the monitor needs the GIL to sample, so C code that blocks *without*
releasing the GIL is seen only once it returns (its duration is still right,
its stack may show the line after).  The stack is that of whatever greenlet ran
in the hub's thread when the threshold was crossed.
"""

from __future__ import annotations

import atexit
import linecache
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable, TypedDict

import greenpatch.hub
from greenpatch.compat_tests._stall_records import (
    JsonLinesSink,
    StallFileError,
    StallRecord,
    aggregate,
    read_records,
)
from greenpatch.hub import Hub, get_hub
from greenpatch.hub.greenlet import Greenlet
from greenpatch.patcher import original

__all__ = [
    "DEFAULT_THRESHOLD",
    "KINDS",
    "STALL_FILE_ENV",
    "STALL_SOURCE_ROOT_ENV",
    "STALL_THRESHOLD_ENV",
    "JsonLinesSink",
    "LoopStallMonitor",
    "SourceMap",
    "StackEntry",
    "StallFileError",
    "aggregate",
    "classify",
    "read_records",
    "start_from_env",
    "threshold_from_env",
]

#: Where ``start_from_env`` appends records, one JSON object a line (unset: no monitor).
STALL_FILE_ENV = "GREENPATCH_STALL_FILE"
#: The tree the tests run from (the harness sets it): installed copies of its files
#: are reported at their place in that tree (see SourceMap).
STALL_SOURCE_ROOT_ENV = "GREENPATCH_STALL_SOURCE_ROOT"
#: Seconds the hub may be held before it counts as a stall.
STALL_THRESHOLD_ENV = "GREENPATCH_STALL_THRESHOLD"
DEFAULT_THRESHOLD = 0.1
#: Innermost frames kept per stack (deep recursion would make huge records).
MAX_FRAMES = 64


class StackEntry(TypedDict):
    """One frame of a recorded stack (a plain dict in the records)."""

    file: str
    line: int
    function: str
    code: str


Sink = Callable[[StallRecord], None]

# Frames from these places are scheduling machinery, not the blocking call site.
_GREENPATCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(greenpatch.hub.__file__)))
_INTERNAL_PREFIXES = (_GREENPATCH_DIR + os.sep,)
_INTERNAL_FILES = frozenset({os.path.abspath(threading.__file__)})
_EXECUTE_CODE = Greenlet._execute.__code__


@dataclass
class _Episode:
    """One stall in progress: from the last sign of progress until the next."""

    start: float
    test: str | None
    when: float
    end: float = 0.0
    stack: list[StackEntry] | None = None
    frame: str = ""
    greenlet: str | None = None
    #: The hub thread's (cpu, waiting) seconds at the start and the end (see _ThreadUsage).
    usage_start: tuple[float, float] | None = None
    usage_end: tuple[float, float] | None = None


#: Stall kinds, from where the hub's thread spent the stall (see classify()).
KINDS = ("cpu", "blocked", "unscheduled", "unknown")


def classify(wall: float, cpu: float | None, waiting: float | None) -> str:
    """What held the hub for ``wall`` seconds, from the thread's accounting.

    ``cpu``: seconds the hub's thread ran; ``waiting``: seconds it could have run
    but was not given a CPU (the run queue of an overloaded machine) or the whole
    system was suspended.  The rest it slept in the kernel: a system call.  The
    largest share names the stall: "cpu" (a busy loop, a C extension computing),
    "blocked" (a C client waiting on its socket, an unpatched sleep or lock) or
    "unscheduled" (the process was not running at all: not the library's doing).
    The largest share rather than a fixed cut-off: a busy loop on a loaded machine
    is half on the CPU and half in the run queue, and is still a busy loop.
    """
    if cpu is None or waiting is None or wall <= 0:
        return "unknown"
    blocked = wall - cpu - waiting
    shares = {"cpu": cpu, "unscheduled": waiting, "blocked": blocked}
    return max(shares, key=lambda kind: shares[kind])


class _ThreadUsage:
    """Reads where one thread's time went: (seconds on the CPU, seconds waiting).

    Linux's ``/proc/self/task/<tid>/schedstat`` gives both the thread's CPU time
    and its run-queue wait (runnable, not running) in one read; the file stays
    open and is re-read with ``pread`` (a /proc file is regenerated at offset 0),
    one system call per sample.  CLOCK_BOOTTIME running ahead of CLOCK_MONOTONIC
    is time the whole machine was suspended, which also counts as waiting.
    Without the file (another system, no native id): the thread's CPU clock
    (``pthread_getcpuclockid``), and waiting taken as 0 -- so an overloaded
    machine is reported as "blocked" there, never excused by a guess.

    Rejected: ``resource.getrusage(RUSAGE_THREAD)``, which measures only the
    calling thread (the monitor, not the hub); ``time.process_time()``, which sums
    every thread, the test's helpers included.
    """

    def __init__(self, thread_ident: int, native_id: int | None) -> None:
        self._fd: int | None = None
        self._clock: int | None = None
        if native_id is not None:
            try:
                self._fd = os.open(f"/proc/self/task/{native_id}/schedstat", os.O_RDONLY)
            except OSError:
                self._fd = None
        if self._fd is None:
            try:
                self._clock = time.pthread_getcpuclockid(thread_ident)
            except (AttributeError, OSError, OverflowError):
                self._clock = None
        try:
            self._boot: int | None = time.CLOCK_BOOTTIME
        except AttributeError:
            self._boot = None

    def read(self) -> tuple[float, float] | None:
        """(cpu seconds, waiting seconds) so far, or None when nothing is known."""
        suspended = 0.0
        if self._boot is not None:
            suspended = time.clock_gettime(self._boot) - time.clock_gettime(time.CLOCK_MONOTONIC)
        try:
            if self._fd is not None:
                fields = os.pread(self._fd, 128, 0).split()
                return int(fields[0]) / 1e9, int(fields[1]) / 1e9 + suspended
            if self._clock is not None:
                return time.clock_gettime(self._clock), suspended
        except (OSError, ValueError, IndexError):
            return None  # the thread has exited
        return None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _StallTracker:
    """Turns samples of (iterations, polling, test) into episodes; pure logic, no clock."""

    def __init__(self, threshold: float, now: float, iterations: int, test: str | None) -> None:
        self.threshold = threshold
        self.current: _Episode | None = None
        self._iterations = iterations
        self._quiet_since = now
        self._quiet_test = test
        self._quiet_usage: tuple[float, float] | None = None

    def observe(
        self,
        now: float,
        iterations: int,
        polling: bool,
        test: str | None,
        wall: float,
        usage: tuple[float, float] | None = None,
    ) -> _Episode | None:
        """Feed one sample (``usage``: the hub thread's (cpu, waiting) seconds, if
        known); returns the episode that this sample ended, if any."""
        if polling or iterations != self._iterations or test != self._quiet_test:
            # The hub ran or waits in the kernel, or another test began: a stall
            # going on ends here, and the next one can start no earlier than now.
            finished = self.end(now, usage)
            self._iterations = iterations
            self._quiet_since = now
            self._quiet_test = test
            self._quiet_usage = usage
            return finished
        quiet = now - self._quiet_since
        if self.current is None and quiet > self.threshold:
            self.current = _Episode(
                start=self._quiet_since,
                test=test,
                when=wall - quiet,
                usage_start=self._quiet_usage,
            )
        if self.current is not None:
            self.current.end = now
            self.current.usage_end = usage
        return None

    def end(self, now: float, usage: tuple[float, float] | None = None) -> _Episode | None:
        """End the current episode (if any) at ``now`` and return it."""
        episode, self.current = self.current, None
        if episode is not None:
            episode.end = now
            if usage is not None:
                episode.usage_end = usage
        return episode


class SourceMap:
    """Maps an installed copy of a file back to the file in a source tree.

    A library given by path is installed into the suite's environment from the
    user's tree (not editable: see environment.py), so its frames name
    ``.../site-packages/lib/mod.py``, a copy in a cache the user never edits.  A
    file under an install directory whose relative path exists under the root
    (or its ``src/``) *with the same bytes* is reported at the root instead.
    Same bytes only: a tree edited since the install must not be blamed for a
    line that differs.  Rejected: a map from the distribution's RECORD, which
    needs the distribution's name in the child and misses src layouts; mapping
    at aggregation time in the harness, which no longer knows where the suite's
    environment installs.  Lookups are cached: a hot loop stalls at one file
    again and again.
    """

    def __init__(self, roots: list[str], install_dirs: list[str] | None = None) -> None:
        self.roots = [os.path.abspath(root) for root in roots if root]
        if install_dirs is None:
            install_dirs = _install_dirs()
        # Longest first: a nested install dir wins over the one containing it.
        self.install_dirs = sorted(
            {os.path.abspath(d) + os.sep for d in install_dirs if d}, key=len, reverse=True
        )
        self._cache: dict[str, str] = {}

    def __call__(self, filename: str) -> str:
        if not self.roots or not self.install_dirs:
            return filename
        found = self._cache.get(filename)
        if found is None:
            found = self._cache[filename] = self._look_up(filename)
        return found

    def _look_up(self, filename: str) -> str:
        path = os.path.abspath(filename)
        for install_dir in self.install_dirs:
            if not path.startswith(install_dir):
                continue
            relative = path[len(install_dir) :]
            for root in self.roots:
                for candidate in (
                    os.path.join(root, relative),
                    os.path.join(root, "src", relative),
                ):
                    if _same_bytes(path, candidate):
                        return candidate
            return filename
        return filename


def _same_bytes(first: str, second: str) -> bool:
    try:
        if os.path.getsize(first) != os.path.getsize(second):
            return False
        with open(first, "rb") as a, open(second, "rb") as b:
            return a.read() == b.read()
    except OSError:
        return False


def _install_dirs() -> list[str]:
    """Where this interpreter installs distributions: site-packages and the like."""
    import site

    dirs = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    user = site.getusersitepackages() if hasattr(site, "getusersitepackages") else ""
    dirs += [user] if isinstance(user, str) else []
    dirs += [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
    return dirs


def _is_internal(filename: str) -> bool:
    path = os.path.abspath(filename)
    return path.startswith(_INTERNAL_PREFIXES) or path in _INTERNAL_FILES


def _describe(
    top: FrameType, source_map: Callable[[str], str] | None = None
) -> tuple[list[StackEntry], str, str | None]:
    """The stack (outermost first), the blocking call site, and the running task's name.
    ``source_map`` turns an installed file's name into its source's (SourceMap)."""
    frames: list[FrameType] = []
    frame: FrameType | None = top
    task_name: str | None = None
    while frame is not None:
        if len(frames) < MAX_FRAMES:
            frames.append(frame)
        if task_name is None and frame.f_code is _EXECUTE_CODE:
            # Greenlet._execute(self, worker) is on the stack of every running task;
            # its ``self`` is the task.  (greenpatch.getcurrent() would answer for
            # the monitor's own thread, not the watched one.)
            try:
                task = frame.f_locals.get("self")
                task_name = str(task.name) if isinstance(task, Greenlet) else None
            except Exception:
                task_name = None
        frame = frame.f_back
    stack = [
        StackEntry(
            file=f.f_code.co_filename,
            line=f.f_lineno or 0,
            function=f.f_code.co_name,
            code=linecache.getline(f.f_code.co_filename, f.f_lineno or 0).strip(),
        )
        for f in reversed(frames)
    ]
    site = next((e for e in reversed(stack) if not _is_internal(e["file"])), stack[-1])
    if source_map is not None:
        # After the call site is chosen and the code read: both want the real file.
        for entry in stack:
            entry["file"] = source_map(entry["file"])
    return stack, f"{site['file']}:{site['line']} in {site['function']}", task_name


class LoopStallMonitor:
    """Watches one hub from a real OS thread and records every stall longer than ``threshold``.

    ``hub`` defaults to the hub of the calling thread (created if needed).  ``sink``
    is called with each finished record, always in the monitor thread (``stop()``
    waits for the last one).  Set ``current_test`` from outside to tag records;
    ``records`` lists every finished record.  ``interval`` is the sampling period
    (default: a fifth of the threshold, at most 50 ms).
    """

    def __init__(
        self,
        hub: Hub | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        sink: Sink | None = None,
        interval: float | None = None,
        source_map: Callable[[str], str] | None = None,
    ) -> None:
        if not threshold > 0:
            raise ValueError(f"threshold must be a positive number of seconds, got {threshold!r}")
        if interval is None:
            interval = min(max(threshold / 5, 0.001), 0.05)
        if not interval > 0:
            raise ValueError(f"interval must be a positive number of seconds, got {interval!r}")
        self.hub = hub if hub is not None else get_hub()
        self.threshold = float(threshold)
        self.interval = float(interval)
        self.sink = sink
        self.source_map = source_map
        self.current_test: str | None = None
        self.records: list[StallRecord] = []
        #: OS thread id of the monitor thread, once started.
        self.ident: int | None = None
        self._started = False
        self._stopping = False
        self._alive = False
        self._wake: Any = None
        self._done: Any = None
        self._tracker: _StallTracker | None = None
        self._clock: Callable[[], float] = original("time", "monotonic")
        self._wall_clock: Callable[[], float] = original("time", "time")
        self._usage = _ThreadUsage(self.hub.thread_ident, _native_id(self.hub.thread_ident))

    # -- life cycle -------------------------------------------------------------
    def start(self) -> LoopStallMonitor:
        """Start the monitor thread (a real OS thread, whatever is patched); returns self."""
        if self._started:
            raise RuntimeError("this LoopStallMonitor was already started")
        self._started = True
        allocate_lock = original("_thread", "allocate_lock")
        start_new_thread = original("_thread", "start_new_thread")
        self._wake = allocate_lock()
        self._wake.acquire()  # held: the monitor's timed acquire doubles as its sleep
        self._done = allocate_lock()
        self._done.acquire()  # released by the monitor thread as its very last act
        loop = self.hub.loop
        self._tracker = _StallTracker(
            self.threshold, self._clock(), loop.iterations, self.current_test
        )
        self._tracker._quiet_usage = self._usage.read()
        ready = allocate_lock()
        ready.acquire()
        self._alive = True
        self.ident = start_new_thread(self._run, (ready,))
        # Wait until it runs, so that a stall right after start() is not missed.
        ready.acquire(True, 10.0)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread; a stall still going on is recorded.  Idempotent."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        self._wake.release()
        if self.ident != original("_thread", "get_ident")():
            self._done.acquire(True, timeout)

    def __enter__(self) -> LoopStallMonitor:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the monitor thread is alive and sampling."""
        return self._alive

    # -- the monitor thread -----------------------------------------------------
    def _run(self, ready: Any) -> None:
        ready.release()
        try:
            while not self._stopping:
                # Times out after one interval, or returns at once when stop() releases it.
                self._wake.acquire(True, self.interval)
                self._sample()
            # A last look: stop() may have come in the middle of the previous sample.
            self._sample()
            assert self._tracker is not None
            self._finish(self._tracker.end(self._clock(), self._usage.read()))
        except BaseException as exc:  # a monitor bug must not go unnoticed, nor kill anything
            sys.stderr.write(f"greenpatch: the loop-stall monitor failed: {exc!r}\n")
        finally:
            self._usage.close()
            self._alive = False
            self._done.release()

    def _sample(self) -> None:
        tracker = self._tracker
        assert tracker is not None
        loop = self.hub.loop
        # Two plain attribute reads: atomic under the GIL, and free for the hub.
        finished = tracker.observe(
            self._clock(),
            loop.iterations,
            loop.polling,
            self.current_test,
            self._wall_clock(),
            self._usage.read(),
        )
        self._finish(finished)
        episode = tracker.current
        if episode is not None and episode.stack is None:
            self._capture(episode)

    def _capture(self, episode: _Episode) -> None:
        top = sys._current_frames().get(self.hub.thread_ident)
        if top is None:
            episode.stack, episode.frame = [], "<the hub's thread has exited>"
            return
        try:
            episode.stack, episode.frame, episode.greenlet = _describe(top, self.source_map)
        finally:
            del top  # a frame of another thread must not outlive this sample

    def _finish(self, episode: _Episode | None) -> None:
        if episode is None or episode.stack is None:
            return  # no episode, or it ended before the monitor could look at it
        wall = episode.end - episode.start
        cpu = waiting = None
        if episode.usage_start is not None and episode.usage_end is not None:
            cpu = max(episode.usage_end[0] - episode.usage_start[0], 0.0)
            waiting = max(episode.usage_end[1] - episode.usage_start[1], 0.0)
        record: StallRecord = {
            "test": episode.test,
            "duration": round(wall, 4),
            "kind": classify(wall, cpu, waiting),
            "cpu": None if cpu is None else round(cpu, 4),
            "waiting": None if waiting is None else round(waiting, 4),
            "stack": episode.stack,
            "frame": episode.frame,
            "when": round(episode.when, 3),
            "greenlet": episode.greenlet,
        }
        self.records.append(record)
        if self.sink is not None:
            try:
                self.sink(record)
            except Exception as exc:
                sys.stderr.write(f"greenpatch: could not store a stall record: {exc!r}\n")


def _native_id(thread_ident: int) -> int | None:
    """The kernel's id of the thread ``thread_ident`` (for its /proc entries)."""
    if thread_ident == original("_thread", "get_ident")():
        native: int = original("_thread", "get_native_id")()
        return native
    # Another thread's hub: threading knows its native id if threading started it.
    # (threading._active may be the green module's in a patched process: a miss
    # there only costs the run-queue figure, see _ThreadUsage.)
    thread = getattr(threading, "_active", {}).get(thread_ident)
    native_id = getattr(thread, "native_id", None)
    return native_id if isinstance(native_id, int) else None


def threshold_from_env(environ: Mapping[str, str] | None = None) -> float:
    """``GREENPATCH_STALL_THRESHOLD`` as seconds (default 0.1); a clear error if malformed."""
    env = os.environ if environ is None else environ
    text = env.get(STALL_THRESHOLD_ENV, "").strip()
    if not text:
        return DEFAULT_THRESHOLD
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(
            f"{STALL_THRESHOLD_ENV}={text!r}: expected a positive number of seconds, e.g. 0.1"
        )
    return value


def start_from_env(environ: Mapping[str, str] | None = None) -> LoopStallMonitor | None:
    """Start a monitor of the calling thread's hub that appends to ``GREENPATCH_STALL_FILE``.

    Returns None when the variable is unset or empty.  The file is created at once
    (an empty file means "monitored, no stall"), and the monitor is stopped at
    interpreter exit if nobody stopped it before.
    """
    env = os.environ if environ is None else environ
    path = env.get(STALL_FILE_ENV, "").strip()
    if not path:
        return None
    threshold = threshold_from_env(env)
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    root = env.get(STALL_SOURCE_ROOT_ENV, "").strip()
    source_map = SourceMap([root]) if root else None
    monitor = LoopStallMonitor(threshold=threshold, sink=JsonLinesSink(path), source_map=source_map)
    monitor.start()
    atexit.register(monitor.stop)
    return monitor
