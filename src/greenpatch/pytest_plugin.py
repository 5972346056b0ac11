"""``pytest --greenpatch``: a test suite run patched, with the loop stalls of each test.

The ``greenpatch`` pytest11 entry point (``greenpatch_pytest``, which imports
nothing of greenpatch) calls ``activate`` from ``pytest_load_initial_conftests``
when the run asks for it.  ``activate`` patches, then registers ``StallReporter``,
which watches the hub of the main thread with the harness's loop-stall monitor
(``greenpatch.compat_tests.stall``) while the tests run, tags the stalls with the
running test, and lists them in the terminal summary.  docs/pytest-plugin.md is
the user's page.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Generator
from typing import Any, Callable

import pytest

import greenpatch
from greenpatch.compat_tests.stall import (
    DEFAULT_THRESHOLD,
    JsonLinesSink,
    LoopStallMonitor,
    aggregate,
)
from greenpatch.compat_tests.stall_advice import STALL_ADVICE, spot_kind
from greenpatch.patcher import GreenpatchWarning, load_plugins, original, registry

__all__ = [
    "REPORTER_NAME",
    "SECTION_TITLE",
    "StallReporter",
    "activate",
    "check_without",
    "late_patch_summary",
]

#: The name ``StallReporter`` is registered under.
REPORTER_NAME = "greenpatch-stalls"
#: The heading of the terminal summary's section.
SECTION_TITLE = "greenpatch: loop stalls"
#: Tests and hot spots per test shown in the summary (the JSON file has them all).
TOP_TESTS = 20
TOP_SPOTS = 5

_HOLDER = re.compile(r"module '([^']+)' was imported before patch_all\(\) and holds (.*?); it will")
_EARLY_MODULE = re.compile(r"(\w+) was imported before patch_all\(\)")


def late_patch_summary(messages: list[str]) -> str | None:
    """One warning for every late-patch problem ``patch_all()`` found at start-up.

    When the plugin patches, nothing of the user's has been imported yet: pytest and
    the plugins it loaded (anyio, hypothesis, ... through their entry points) have.
    Their own references to the originals are usually harmless, and the usual
    advice ("patch before importing X") cannot be followed from inside pytest.  So
    the problems become one warning, naming what keeps an original and the two
    cures that work here.  None when there is nothing to say.
    """
    items: list[str] = []
    for message in messages:
        holder = _HOLDER.match(message)
        early = _EARLY_MODULE.match(message)
        if holder is not None:
            held = re.findall(r"\(the original ([\w.]+)\)", holder.group(2))
            items.append(f"{holder.group(1)} ({', '.join(held)})")
        elif early is not None:
            items.append(early.group(1))
        else:
            items.append(message.split(";")[0])
    if not items:
        return None
    return (
        "pytest and its plugins were imported before greenpatch could patch, and some "
        f"of it keeps the unpatched standard library: {'; '.join(items)}. This is "
        "harmless unless your tests use these modules. If they do, start pytest "
        "patched (`greenpatch run -m pytest --greenpatch`), or leave out the plugin "
        "that imports them (`-p no:NAME`)."
    )


def check_without(flags: list[str]) -> list[str]:
    """``--greenpatch-without`` flags, sorted and unique; ``pytest.UsageError``
    (one line, exit status 4) for a flag ``patch_all`` does not know, or for one
    already in force in this process -- the patch cannot be taken back, and the
    tests would silently run with what they were meant to run without."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a broken plugin's warning comes with patch_all
        load_plugins()
    known = sorted({spec.flag for spec in registry.specs})
    unknown = [flag for flag in dict.fromkeys(flags) if flag not in known]
    if unknown:
        raise pytest.UsageError(
            f"--greenpatch-without {', '.join(unknown)}: not a patch_all flag; "
            f"known: {', '.join(known)} (see `greenpatch patches`)"
        )
    for flag in flags:
        if any(registry.is_patched(spec.name) for spec in registry.specs_for_flag(flag)):
            raise pytest.UsageError(
                f"--greenpatch-without {flag}: {flag} is already patched in this process "
                f"(started by `greenpatch run`?); leave it out there: "
                f"`greenpatch run --without {flag} -m pytest ...`"
            )
    return sorted(set(flags))


def activate(config: pytest.Config) -> None:
    """Patch now, before conftest.py files and test modules are imported, and
    register the stall reporter.  A second call (a second session in one process)
    only registers a new reporter: the patch is process-wide and stays.
    ``--greenpatch-without FLAG`` leaves flags out of ``patch_all()``."""
    if config.pluginmanager.has_plugin(REPORTER_NAME):
        return
    option: Any = config.known_args_namespace
    without = check_without(list(option.greenpatch_without or []))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        applied = greenpatch.patch_all(**dict.fromkeys(without, False))
    late: list[str] = []
    for warning in caught:
        if issubclass(warning.category, GreenpatchWarning):
            late.append(str(warning.message))
            continue
        message = warning.message
        if not isinstance(message, Warning):
            message = warning.category(str(message))
        config.issue_config_time_warning(message, stacklevel=2)
    summary = late_patch_summary(late)
    if summary is not None:
        config.issue_config_time_warning(GreenpatchWarning(summary), stacklevel=2)
    threshold = option.greenpatch_stall_threshold or DEFAULT_THRESHOLD
    stalls_path: str | None = option.greenpatch_stalls
    reporter = StallReporter(
        threshold=threshold,
        strict=bool(option.greenpatch_strict),
        stalls_path=(str(config.invocation_params.dir / stalls_path) if stalls_path else None),
        applied=applied,
        without=without,
    )
    config.pluginmanager.register(reporter, REPORTER_NAME)


Record = dict[str, Any]


class StallReporter:
    """Watches the main thread's hub while the tests run; one record per stall,
    tagged with the test that was running (``LoopStallMonitor.current_test``)."""

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        strict: bool = False,
        stalls_path: str | None = None,
        applied: list[str] | None = None,
        without: list[str] | None = None,
    ) -> None:
        self.threshold = threshold
        self.without = list(without or [])
        self.strict = strict
        self.stalls_path = stalls_path
        self.applied = list(applied or [])
        self.monitor: LoopStallMonitor | None = None
        self.records: list[Record] = []
        self.tests_seen = 0
        self._started: dict[str, float] = {}
        self._clock: Callable[[], float] = original("time", "monotonic")
        self._sleep: Callable[[float], None] = original("time", "sleep")

    # -- the monitor's life: exactly the test loop --------------------------------
    def _start(self) -> None:
        sink = None
        if self.stalls_path is not None:
            directory = os.path.dirname(self.stalls_path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            with open(self.stalls_path, "w", encoding="utf-8"):
                pass  # one run per file: an empty file is "watched, no stall"
            sink = JsonLinesSink(self.stalls_path)
        self.monitor = LoopStallMonitor(threshold=self.threshold, sink=sink).start()

    def _stop(self) -> None:
        monitor = self.monitor
        if monitor is not None:
            monitor.current_test = None
            monitor.stop()
            self.records = list(monitor.records)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, Any, None]:
        watch = not (session.config.option.collectonly or session.testsfailed)
        if watch:
            self._start()
        try:
            yield
        finally:
            if watch:
                self._stop()

    def pytest_report_header(self, config: pytest.Config) -> str:
        patched = ", ".join(greenpatch.patched()) or "nothing"
        left_out = f"; left out: {', '.join(self.without)}" if self.without else ""
        strict = "; a stall fails its test" if self.strict else ""
        return (
            f"greenpatch: patched before collection ({patched}){left_out}; "
            f"loop stalls over {self.threshold:g} s reported{strict}"
        )

    # -- tagging ------------------------------------------------------------------
    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.tests_seen += 1
        self._started[nodeid] = self._clock()
        if self.monitor is not None:
            self.monitor.current_test = nodeid

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        self._started.pop(nodeid, None)
        if self.monitor is not None:
            self.monitor.current_test = None

    # -- --greenpatch-strict -------------------------------------------------------
    def _stalls_so_far(self, nodeid: str) -> list[Record]:
        """The stalls of ``nodeid`` up to now, the one going on included.

        The monitor writes a record when the stall ends, seen from its own thread:
        a stall that lasts until this call ends only once the tag changes and the
        monitor has sampled.  So the tag is lifted for a few sampling intervals
        (a real sleep: no greenlet of the test runs inside pytest's hook), then
        put back for the teardown.  A test shorter than the threshold cannot have
        stalled, and costs nothing.
        """
        monitor = self.monitor
        if monitor is None:
            return []
        started = self._started.get(nodeid)
        if started is not None and self._clock() - started > monitor.threshold:
            monitor.current_test = None
            self._sleep(3 * monitor.interval)
            monitor.current_test = nodeid
        return [record for record in list(monitor.records) if record.get("test") == nodeid]

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, None]:
        outcome = yield
        if not self.strict or call.when != "call":
            return
        report: pytest.TestReport = outcome.get_result()
        if not report.passed or hasattr(report, "wasxfail"):
            return
        # A process that was not running is nobody's fault (see stall.classify).
        stalls = [
            record
            for record in self._stalls_so_far(item.nodeid)
            if record.get("kind") != "unscheduled"
        ]
        if stalls:
            report.outcome = "failed"
            lines = [
                f"greenpatch --greenpatch-strict: the test held the hub's loop for more "
                f"than {self.threshold:g} s ({len(stalls)} stall{'s' if len(stalls) > 1 else ''}):"
            ]
            rootdir = str(item.config.rootpath)
            lines += [_spot_line(spot, rootdir) for spot in aggregate(stalls)]
            lines += _advice(aggregate(stalls))
            report.longrepr = "\n".join(lines)

    # -- the summary --------------------------------------------------------------
    def pytest_terminal_summary(
        self, terminalreporter: Any, exitstatus: int, config: pytest.Config
    ) -> None:
        if self.monitor is None:
            return
        write = terminalreporter.write_line
        terminalreporter.write_sep("=", SECTION_TITLE)
        by_test: dict[str, list[Record]] = {}
        outside = 0
        for record in self.records:
            test = record.get("test")
            if test is None:
                outside += 1
            else:
                by_test.setdefault(str(test), []).append(record)
        rootdir = str(config.rootpath)
        if not by_test:
            write(f"no test held the loop for more than {self.threshold:g} s")
        else:
            ranked = sorted(
                ((test, aggregate(records)) for test, records in by_test.items()),
                key=lambda entry: (-max(float(s["worst"]) for s in entry[1]), entry[0]),
            )
            write(
                f"{len(ranked)} of {self.tests_seen} tests held the loop for more than "
                f"{self.threshold:g} s, worst first:"
            )
            shown: list[dict[str, Any]] = []
            for test, spots in ranked[:TOP_TESTS]:
                count = sum(int(spot["count"]) for spot in spots)
                write(f"{test}  ({count} stall{'s' if count > 1 else ''})")
                for spot in spots[:TOP_SPOTS]:
                    write(_spot_line(spot, rootdir))
                if len(spots) > TOP_SPOTS:
                    write(f"  ... {len(spots) - TOP_SPOTS} more sites")
                shown += spots[:TOP_SPOTS]
            if len(ranked) > TOP_TESTS:
                write(f"... {len(ranked) - TOP_TESTS} more tests stalled")
            for line in _advice(shown):
                write(line)
        if outside:
            write(f"{outside} stall{'s' if outside > 1 else ''} between tests (pytest's own work)")
        if self.stalls_path is not None:
            write(f"stall records: {self.stalls_path}")


def _spot_line(spot: dict[str, Any], rootdir: str) -> str:
    """One hot spot, as the harness prints it (``display.print_hot_spots``)."""
    frame = str(spot.get("frame", "?"))
    if frame.startswith(rootdir + os.sep):
        frame = frame[len(rootdir) + 1 :]
    return (
        f"  {float(spot.get('worst', 0.0)):7.3f} s worst {float(spot.get('total', 0.0)):8.3f}"
        f" s total {int(spot.get('count', 0)):4d}x  [{spot_kind(spot)}]  {frame}"
    )


def _advice(spots: list[dict[str, Any]]) -> list[str]:
    """The advice line of each kind among ``spots``, once, in order of appearance."""
    kinds: list[str] = []
    for spot in spots:
        kind = spot_kind(spot)
        if kind not in kinds:
            kinds.append(kind)
    return [f"  [{kind}] {STALL_ADVICE[kind]}" for kind in kinds]
