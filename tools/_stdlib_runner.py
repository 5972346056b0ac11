"""Run one unittest module and write every test's outcome as JSON lines.

    python tools/_stdlib_runner.py test.test_socket --events out.jsonl
    python -m greenpatch run tools/_stdlib_runner.py test.test_socket --events out.jsonl

``tools/stdlib_tests.py`` runs this twice per module, plain and under
``greenpatch run``, and compares the two event files.  It is a script, not a
module of greenpatch: run under ``greenpatch run`` it sees exactly what a user's
program sees (everything patched before its first import).

Events (one JSON object per line, flushed at once so that a killed run keeps
everything up to the test that hung):

    {"event": "collected", "ids": [...], "patches": [...], "python": "3.11.7"}
    {"event": "start", "id": "test.test_x.Class.test_y"}
    {"event": "result", "id": ..., "outcome": "pass", "duration": 0.01, "detail": ""}
    {"event": "hang", "id": ..., "seconds": 60, "stacks": "..."}
    {"event": "done", "elapsed": 12.3}

Outcomes: pass, fail, error, skip, xfail (an expected failure), xpass (an
unexpected success), notrun (a class or module fixture failed before it ran).
Class and module fixtures that fail are reported under their unittest ids, e.g.
``setUpClass (test.test_x.Class)``.

Like regrtest, the runner enables no test resources (``-u``): tests that need
the network are skipped.  It runs the tests in a fresh temporary directory,
because CPython's tests create files named after ``TESTFN`` in the current one.

The hang watchdog is a real OS thread, started from the original
``_thread.start_new_thread`` (a patched one could make it a greenlet of the very
loop it watches).  When a test makes no progress for ``--hang-timeout`` seconds
it writes a ``hang`` event with the stacks of every thread *and every greenlet*
(faulthandler alone shows only what each thread runs, which is the hub's loop
when a greenlet hangs) and exits the process; the supervisor restarts the run
with that test excluded.  faulthandler is armed as a backstop in case the
watchdog thread cannot get the GIL.
"""

from __future__ import annotations

import argparse
import faulthandler
import fnmatch
import gc
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import unittest
from collections.abc import Iterator
from typing import Any, Callable, TextIO

_DETAIL_LIMIT = 4000
_EXIT_HANG = 86  # the exit status after a hang event
_NO_OUTCOME = (
    "the test ended without an outcome: an exception unittest lets through (KeyboardInterrupt?)"
)


def _original(module: str, attr: str) -> Any:
    """The unpatched ``module.attr``, whether greenpatch patched it or not."""
    registry = sys.modules.get("greenpatch.patcher.api")
    if registry is not None:
        return registry.original(module, attr)
    return getattr(__import__(module), attr)


def _patches_in_force() -> list[str]:
    api = sys.modules.get("greenpatch.patcher.api")
    return list(api.patched()) if api is not None else []


class EventWriter:
    """Appends JSON events to a file; safe to call from the watchdog thread."""

    def __init__(self, path: str) -> None:
        self._file: TextIO = open(path, "a", encoding="utf-8")
        self._lock = _original("_thread", "allocate_lock")()

    def write(self, event: dict[str, Any], wait: float = -1) -> None:
        line = json.dumps(event, default=repr) + "\n"
        if not self._lock.acquire(True, wait):
            return
        try:
            self._file.write(line)
            self._file.flush()
        finally:
            self._lock.release()

    def close(self) -> None:
        self._file.close()


def _short(text: str) -> str:
    if len(text) <= _DETAIL_LIMIT:
        return text
    return text[: _DETAIL_LIMIT // 2] + "\n[...]\n" + text[-_DETAIL_LIMIT // 2 :]


_PRIORITY = {"error": 6, "fail": 5, "xpass": 4, "xfail": 3, "skip": 2, "pass": 1}


class EventResult(unittest.TestResult):
    """A TestResult that writes one ``result`` event per test (subtests folded in)."""

    def __init__(self, events: EventWriter, on_start: Callable[[str], None]) -> None:
        super().__init__()
        self.events = events
        self.on_start = on_start
        self._outcome: str | None = None
        self._detail = ""
        self._started = 0.0
        #: unittest ids of failed/skipped class and module fixtures, with their outcome.
        self.fixtures: dict[str, str] = {}

    def _record(self, outcome: str, detail: str = "") -> None:
        if self._outcome is None or _PRIORITY[outcome] > _PRIORITY[self._outcome]:
            self._outcome = outcome
            self._detail = detail

    def _err(self, test: unittest.TestCase, err: Any) -> str:
        return _short(self._exc_info_to_string(err, test))  # type: ignore[attr-defined]

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self._outcome = None
        self._detail = ""
        self.on_start(test.id())
        self.events.write({"event": "start", "id": test.id()})
        self._started = time.perf_counter()

    def stopTest(self, test: unittest.TestCase) -> None:
        super().stopTest(test)
        self.events.write(
            {
                "event": "result",
                "id": test.id(),
                # No outcome at all: something unittest does not catch
                # (KeyboardInterrupt, SystemExit) ended the test.
                "outcome": self._outcome or "error",
                "duration": round(time.perf_counter() - self._started, 4),
                "detail": self._detail if self._outcome else _NO_OUTCOME,
            }
        )

    def _fixture(self, test: Any, outcome: str, detail: str) -> bool:
        # Class and module fixtures arrive as unittest's _ErrorHolder, outside
        # startTest/stopTest: report them as results of their own.
        if isinstance(test, unittest.TestCase):
            return False
        self.fixtures[test.id()] = outcome
        self.events.write(
            {
                "event": "result",
                "id": test.id(),
                "outcome": outcome,
                "duration": 0.0,
                "detail": detail,
                "fixture": True,
            }
        )
        return True

    def addSuccess(self, test: unittest.TestCase) -> None:
        super().addSuccess(test)
        self._record("pass")

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        super().addError(test, err)
        if not self._fixture(test, "error", self._err(test, err)):
            self._record("error", self._err(test, err))

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addFailure(test, err)
        self._record("fail", self._err(test, err))

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        super().addSkip(test, reason)
        if not self._fixture(test, "skip", reason):
            self._record("skip", reason)

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._record("xfail")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        super().addUnexpectedSuccess(test)
        self._record("xpass")

    def addSubTest(self, test: unittest.TestCase, subtest: unittest.TestCase, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is None:
            return
        if issubclass(err[0], test.failureException):
            self._record("fail", f"{subtest.id()}\n{self._err(test, err)}")
        else:
            self._record("error", f"{subtest.id()}\n{self._err(test, err)}")


def iter_tests(suite: unittest.TestSuite) -> Iterator[unittest.TestCase]:
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from iter_tests(item)
        else:
            yield item


class Exclusions:
    """Test ids to leave out: exact ids, and fnmatch patterns (those with ``*?[``)."""

    def __init__(self, lines: list[str]) -> None:
        self.ids = {line for line in lines if not any(c in line for c in "*?[")}
        self.patterns = [line for line in lines if line not in self.ids]

    def __contains__(self, test_id: object) -> bool:
        return test_id in self.ids or any(
            fnmatch.fnmatchcase(str(test_id), pattern) for pattern in self.patterns
        )


def filter_suite(suite: unittest.TestSuite, exclude: Exclusions) -> unittest.TestSuite:
    """The suite without the excluded tests (nesting, and so fixtures, kept)."""
    kept: list[Any] = []
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            kept.append(filter_suite(item, exclude))
        elif item.id() not in exclude:
            kept.append(item)
    return type(suite)(kept)


class HangWatchdog:
    """A real OS thread that ends the process when one test runs too long."""

    def __init__(self, events: EventWriter, timeout: float) -> None:
        self.events = events
        self.timeout = timeout
        self.current = "<collecting>"
        self.since = time.monotonic()
        self._sleep = _original("time", "sleep")
        _original("_thread", "start_new_thread")(self._watch, ())
        # The backstop, should this thread never get the GIL back.
        faulthandler.dump_traceback_later(timeout + 30, exit=True)

    def progress(self, test_id: str) -> None:
        self.current = test_id
        self.since = time.monotonic()
        faulthandler.dump_traceback_later(self.timeout + 30, exit=True)

    def _watch(self) -> None:
        while True:
            self._sleep(0.5)
            if time.monotonic() - self.since > self.timeout:
                break
        stacks = _all_stacks()
        sys.stderr.write(f"\n=== hang: {self.current} ran for {self.timeout}s ===\n{stacks}\n")
        sys.stderr.flush()
        self.events.write(
            {"event": "hang", "id": self.current, "seconds": self.timeout, "stacks": stacks},
            wait=5,
        )
        os._exit(_EXIT_HANG)


def _all_stacks() -> str:
    """Every thread's stack, then every suspended greenlet's; identical ones once, counted."""
    stacks: dict[str, list[str]] = {}
    for ident, frame in sys._current_frames().items():
        stacks.setdefault("".join(traceback.format_stack(frame)), []).append(f"thread {ident}")
    try:
        from greenlet import greenlet as raw_greenlet
    except ImportError:
        raw_greenlet = None
    if raw_greenlet is not None:
        for obj in gc.get_objects():
            if isinstance(obj, raw_greenlet) and obj.gr_frame is not None:
                text = "".join(traceback.format_stack(obj.gr_frame))
                stacks.setdefault(text, []).append(f"greenlet {obj!r}")
    parts = []
    for text, owners in stacks.items():
        more = f" (and {len(owners) - 1} more with this stack)" if len(owners) > 1 else ""
        parts.append(f"--- {owners[0]}{more}\n{text}")
    return "\n".join(parts)


def _setup_test_support() -> None:
    """What regrtest does before importing a test module, as far as outcomes depend on it."""
    try:
        support: Any = importlib.import_module("test.support")
    except ImportError:  # a Python without its test package: plain unittest modules only
        return
    support.use_resources = []  # never the network: LOOPBACK tests only
    support.verbose = False
    support.record_original_stdout(sys.stdout)


def _fill_fixture_outcomes(
    ids: list[str], reported: set[str], fixtures: dict[str, str], events: EventWriter
) -> None:
    """Tests that never ran because their class or module fixture failed or skipped."""
    for test_id in ids:
        if test_id in reported:
            continue
        for fixture, outcome in fixtures.items():
            name, _, parent = fixture.partition(" (")
            parent = parent.rstrip(")")
            if name in ("setUpClass", "setUpModule") and test_id.startswith(parent + "."):
                events.write(
                    {
                        "event": "result",
                        "id": test_id,
                        "outcome": "skip" if outcome == "skip" else "notrun",
                        "duration": 0.0,
                        "detail": f"{fixture} {outcome}",
                    }
                )
                break


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("module", help="dotted name of a unittest module, e.g. test.test_socket")
    parser.add_argument("--events", required=True, help="JSON-lines file to append events to")
    parser.add_argument("--exclude-file", help="file of test ids to leave out, one per line")
    parser.add_argument("--hang-timeout", type=float, default=120.0)
    parser.add_argument("--path", action="append", default=[], help="prepend to sys.path")
    args = parser.parse_args(argv)

    for entry in reversed(args.path):
        sys.path.insert(0, os.path.abspath(entry))
    lines: list[str] = []
    if args.exclude_file:
        with open(args.exclude_file, encoding="utf-8") as file:
            lines = [line.strip() for line in file if line.strip()]
    exclude = Exclusions(lines)

    events = EventWriter(os.path.abspath(args.events))
    watchdog = HangWatchdog(events, args.hang_timeout)
    faulthandler.enable(all_threads=True)
    began = time.perf_counter()
    _setup_test_support()
    workdir = tempfile.mkdtemp(prefix="stdlib_runner_")
    old_cwd = os.getcwd()
    os.chdir(workdir)
    try:
        loader = unittest.TestLoader()
        try:
            suite = loader.loadTestsFromName(args.module)
        except Exception:
            events.write(
                {"event": "load_error", "detail": _short(traceback.format_exc()), "ids": []}
            )
            return 2
        for error in loader.errors:
            events.write({"event": "load_error", "detail": _short(str(error))})
        ids = [test.id() for test in iter_tests(suite)]
        events.write(
            {
                "event": "collected",
                "ids": ids,
                "excluded": [test_id for test_id in ids if test_id in exclude],
                "patches": _patches_in_force(),
                "python": sys.version.split()[0],
            }
        )
        result = EventResult(events, watchdog.progress)
        suite = filter_suite(suite, exclude)
        suite.run(result)
        _fill_fixture_outcomes(
            [test_id for test_id in ids if test_id not in exclude],
            _reported_ids(os.path.abspath(args.events)),
            result.fixtures,
            events,
        )
        events.write({"event": "done", "elapsed": round(time.perf_counter() - began, 3)})
    finally:
        os.chdir(old_cwd)
        shutil.rmtree(workdir, ignore_errors=True)
        watchdog.timeout = float("inf")
        faulthandler.cancel_dump_traceback_later()
    events.close()
    return 0


def _reported_ids(path: str) -> set[str]:
    seen = set()
    with open(path, encoding="utf-8") as file:
        for line in file:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "result":
                seen.add(event["id"])
    return seen


if __name__ == "__main__":
    # Leave at once: a patched interpreter's shutdown may wait on threads the
    # tests leaked, and those are the tests' business, not a result.
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
