"""What ``greenpatch compat`` shows on the terminal: a live progress bar per suite
with pass/fail counts, and a summary table at the end (rich, from the
``greenpatch[compat]`` extra)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from greenpatch.compat_tests.harness import SuiteListener
from greenpatch.compat_tests.manifest import Manifest
from greenpatch.compat_tests.stall_advice import STALL_ADVICE
from greenpatch.compat_tests.stall_advice import spot_kind as _spot_kind
from greenpatch.reports.model import Result
from greenpatch.reports.summary import cell_verdict, cooperation_of, cooperation_text

__all__ = [
    "LogProgressListener",
    "ProgressListener",
    "print_hot_spots",
    "print_suites",
    "print_summary",
    "status",
    "summary_console",
]

_FAILING = ("failed", "error", "hung", "crashed")


class ProgressListener(SuiteListener):
    """One progress bar per suite; its total grows as each run reports its collection."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.fields[suite]:<10}"),
            TextColumn("{task.fields[phase]:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[green]{task.fields[passed]} passed"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            console=console,
        )
        self.tasks: dict[str, TaskID] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.lock = threading.Lock()

    def __enter__(self) -> ProgressListener:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def add(self, suite: str) -> None:
        with self.lock:
            self.tasks[suite] = self.progress.add_task(
                suite, total=None, suite=suite, phase="waiting", passed=0, failed=0
            )
            self.counts[suite] = {"passed": 0, "failed": 0}

    def phase(self, suite: str, text: str) -> None:
        self.progress.update(self.tasks[suite], phase=text)

    def finish(self, suite: str, text: str) -> None:
        self.progress.update(self.tasks[suite], phase=text[:22])

    def collected(self, suite: str, mode: str, count: int) -> None:
        with self.lock:
            task = self.progress.tasks[self.tasks[suite]]
            done = task.completed if mode == "patched" else 0
            self.progress.update(self.tasks[suite], total=done + count, completed=done)
            self.counts[suite] = {"passed": 0, "failed": 0}

    def outcome(self, suite: str, mode: str, nodeid: str, outcome: str) -> None:
        with self.lock:
            counts = self.counts[suite]
            if outcome == "passed":
                counts["passed"] += 1
            elif outcome in _FAILING:
                counts["failed"] += 1
            self.progress.update(
                self.tasks[suite], advance=1, passed=counts["passed"], failed=counts["failed"]
            )


class LogProgressListener(SuiteListener):
    """Progress as plain lines, for a log (CI): one line per phase, and one line
    per running suite at least every ``interval`` seconds, even while a test
    hangs, so a silent log always means a dead process, never a slow test.

    Rejected: rich's live bars, which on a non-terminal print nothing until the
    end and then one line cut to the width; printing every outcome, which makes
    a log of thousands of lines for a big suite.  ``clock`` is injectable so that
    tests can drive ``tick()`` without waiting.
    """

    def __init__(
        self,
        stream: TextIO,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self.lock = threading.Lock()
        self.suites: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LogProgressListener:
        self._thread = threading.Thread(
            target=self._heartbeat, name="greenpatch-compat-progress", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def _write(self, suite: str, text: str) -> None:
        state = self.suites[suite]
        elapsed = self.clock() - state["started"]
        # One write and a flush per line: lines of suites run with --jobs never
        # interleave, and a CI log shows them as they happen.
        self.stream.write(f"[{elapsed:6.0f} s] {suite}: {text}\n")
        self.stream.flush()

    def add(self, suite: str) -> None:
        with self.lock:
            self.suites[suite] = {
                "started": self.clock(),
                "phase": "waiting",
                "mode": None,
                "done": 0,
                "total": 0,
                "passed": 0,
                "failed": 0,
                "finished": False,
            }

    def finish(self, suite: str, text: str) -> None:
        """The suite is over: a last line, and no more heartbeats for it."""
        with self.lock:
            state = self.suites[suite]
            if state["mode"] is not None:
                self._write(suite, self.progress_line(suite).replace(":", " finished:", 1))
            state.update(finished=True, mode=None)
            self._write(suite, text)

    def phase(self, suite: str, text: str) -> None:
        with self.lock:
            state = self.suites[suite]
            if state["mode"] is not None:
                # The end of a run: its final counts, before the next phase.
                self._write(suite, self.progress_line(suite).replace(":", " finished:", 1))
            state["phase"] = text
            mode = text[: -len(" run")] if text in ("plain run", "patched run") else None
            state.update(mode=mode, done=0, total=0, passed=0, failed=0)
            self._write(suite, text)

    def collected(self, suite: str, mode: str, count: int) -> None:
        with self.lock:
            state = self.suites[suite]
            # A resumed pytest (after a hang or crash) collects what is left.
            state["total"] = state["done"] + count

    def outcome(self, suite: str, mode: str, nodeid: str, outcome: str) -> None:
        with self.lock:
            state = self.suites[suite]
            state["done"] += 1
            if outcome == "passed":
                state["passed"] += 1
            elif outcome in _FAILING:
                state["failed"] += 1

    def progress_line(self, suite: str) -> str:
        state = self.suites[suite]
        if state["mode"] is None:
            return f"{state['phase']} ..."
        total = state["total"] or "?"
        return (
            f"{state['phase']}: {state['done']}/{total} tests done, "
            f"{state['passed']} passed, {state['failed']} failed"
        )

    def tick(self) -> None:
        """One progress line per suite still running."""
        with self.lock:
            for suite, state in self.suites.items():
                if not state["finished"] and state["phase"] != "waiting":
                    self._write(suite, self.progress_line(suite))


def _mode_cell(result: Result, mode: str) -> str:
    summary = result.modes.get(mode)
    if summary is None or not summary.ran:
        return "did not run"
    counts = summary.counts
    # Hung and crashed apart from failed: a hang under the patch usually means a
    # blocked loop, a crash a C extension -- not the same work as an assertion.
    parts = [f"{counts.get('passed', 0)} passed"]
    parts.append(f"{counts.get('failed', 0) + counts.get('error', 0)} failed")
    for outcome in ("hung", "crashed"):
        if counts.get(outcome):
            parts.append(f"{counts[outcome]} {outcome}")
    parts.append(f"{counts.get('skipped', 0) + counts.get('deselected', 0)} skipped")
    hangs = f", {summary.watchdog_seconds:.0f} s in hangs" if summary.watchdog_seconds else ""
    return f"{', '.join(parts)} ({summary.duration:.1f} s{hangs})"


def _probe_cell(result: Result) -> str:
    cooperation = cooperation_of(result)
    if cooperation in ("not_measured", "probe_error"):
        # Said in words, with the reason ("the manifest has no [probe]"), rather
        # than a "-" that reads like "nothing to report".  The same sentence as
        # every rendering of the result (reports.summary.cooperation_text).
        # The pointer to the docs stays in the result file: the cell is narrow.
        text = cooperation_text(result).split(" (see ")[0]
        return f"[yellow]{escape(_gist(text, 90))}[/]"
    probe = result.probe or {}
    verdict = "[green]cooperative" if cooperation == "cooperative" else "[red]blocking"
    return f"{verdict} ({float(probe.get('factor', 0.0)):.1f}x of {probe.get('concurrency')})"


def status(result: Result) -> tuple[str, str]:
    """The suite's status in one phrase, and its style.

    The kind is the reports' (``reports.summary.cell_verdict``), so the terminal
    and the Markdown/HTML renderings never disagree: "PASS" only for a complete
    result whose two runs happened, found no regression, and whose probe says
    cooperative.  A partial run, a one-mode run, a run without tests or without
    a cooperation measurement is never a pass, whatever its counts say.
    """
    cell = cell_verdict(result)
    stalls = [
        spot for spot in result.hot_spots if _spot_kind(spot) != "unscheduled" and _in_tests(spot)
    ]
    # Passing tests that hold the loop: fine for a test, not for a server.
    stalled = f", loop stalls at {len(stalls)} site(s)" if stalls else ""
    if cell.kind == "pass":
        return f"PASS{stalled}", "yellow" if stalls else "green"
    if cell.kind == "unmeasured":
        return f"NO REGRESSION, cooperation not measured{stalled}", "yellow"
    if cell.kind == "incomplete":
        return f"INCOMPLETE: {cell.label}", "yellow"
    if cell.kind == "not-run":
        return f"NOT RUN: {cell.label}", "red"
    partial = ", INCOMPLETE" if cell.incomplete else ""
    return f"{cell.kind.upper()}: {cell.label}{partial}", "red"


def _gist(text: str, limit: int = 160) -> str:
    """The first line of ``text`` that says something, cut to ``limit``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    interesting = [line for line in lines if "Error" in line or "error" in line]
    line = (interesting or lines or ["?"])[-1 if interesting else 0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def summary_console() -> Console:
    """A console for the summary: wide enough for the table even when piped."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


#: Hot spots shown per suite; the result file has them all.
TOP_HOT_SPOTS = 5


def _in_tests(spot: dict[str, Any]) -> bool:
    """Whether a hot spot was seen while a test ran (not during collection:
    pytest compiling the test modules holds the loop for seconds, which is no
    finding about the library)."""
    return bool(spot.get("tests", True))


def print_hot_spots(console: Console, result: Result, top: int = TOP_HOT_SPOTS) -> None:
    """The worst loop stalls of ``result``'s patched run, each with what to do.

    Stalls seen while no test ran (collection, session-scoped set-up) come
    after, apart, and are not counted in the status line.
    """
    if not result.hot_spots:
        return
    spots = [spot for spot in result.hot_spots if _in_tests(spot)]
    outside = [spot for spot in result.hot_spots if not _in_tests(spot)]
    console.print(f"[bold]loop stalls[/] in {escape(result.suite)} (patched run), worst first:")
    if not spots:
        console.print("  none while a test ran")
    kinds: list[str] = []
    for spot in spots[:top]:
        kind = _spot_kind(spot)
        if kind not in kinds:
            kinds.append(kind)
        line = (
            f"  {float(spot.get('worst', 0.0)):7.3f} s worst {float(spot.get('total', 0.0)):8.3f}"
            f" s total {int(spot.get('count', 0)):4d}x  [{kind}]  {spot.get('frame', '?')}"
        )
        # soft_wrap: a path is never cut or folded, so it can be copied.
        console.print(escape(line), soft_wrap=True)
    if len(spots) > top:
        console.print(f"  ... {len(spots) - top} more in the result file")
    if outside:
        worst = max(outside, key=lambda spot: float(spot.get("worst", 0.0)))
        console.print(
            escape(
                f"  outside any test (collection, session set-up): {len(outside)} site(s), "
                f"worst {float(worst.get('worst', 0.0)):.3f} s at {worst.get('frame', '?')}"
            ),
            soft_wrap=True,
        )
    for kind in kinds:
        console.print(f"  [{kind}] {STALL_ADVICE[kind]}", soft_wrap=True, markup=False)


def print_summary(console: Console, results: list[tuple[Result, Path]]) -> None:
    table = Table(title="greenpatch compat", show_lines=True)
    table.caption = "time x: patched / plain, less the time spent waiting out hung tests"
    for column in ("suite", "plain", "patched", "time x", "verdicts"):
        table.add_column(column)
    # Sentences, wrapped in narrow columns: the counts of the runs keep the room.
    table.add_column("probe", max_width=32)
    table.add_column("status", max_width=30)
    for result, _path in results:
        plain, patched = result.modes.get("plain"), result.modes.get("patched")
        ratio = "-"
        # A run that stopped early says nothing about speed.
        complete = not result.incomplete and result.not_run_reason is None
        if complete and plain and patched and plain.active_duration > 0 and patched.ran:
            ratio = f"{patched.active_duration / plain.active_duration:.2f}"
        verdicts = "\n".join(f"{count} {name}" for name, count in result.verdicts.items())
        if result.not_run_reason:
            # The table gets the gist; the result file has the whole story.
            verdicts = f"[red]not run:[/] {escape(_gist(result.not_run_reason))}"
        label, style = status(result)
        table.add_row(
            escape(
                f"{result.suite} {result.version}\nPython {result.python}"
                + (f"\n{result.variant}" if result.variant else "")
            ),
            _mode_cell(result, "plain"),
            _mode_cell(result, "patched"),
            ratio,
            verdicts or "-",
            _probe_cell(result),
            f"[{style}]{escape(label)}[/]",
        )
    console.print(table)
    for _result, path in results:
        # Outside the table, never wrapped: a table cell cut the path to "reports/rep…".
        console.print(escape(f"result: {path}"), soft_wrap=True)
    for result, _ in results:
        print_hot_spots(console, result)
    for result, _ in results:
        for test in result.regressions():
            lines = (test.error or "?").strip().splitlines() or ["?"]
            # A failure ends with the exception; a hang or crash starts with what happened.
            line = lines[0] if test.patched in ("hung", "crashed") else lines[-1]
            where = escape(f"{result.suite}: {test.nodeid}: {line[:160]}")
            console.print(f"[red]regression[/] {where}")


def print_suites(console: Console, manifests: list[Manifest]) -> None:
    table = Table(title="built-in suites")
    for column in (
        "suite",
        "distribution",
        "tests",
        "known to work",
        "matrix",
        "services",
        "probe",
    ):
        table.add_column(column)
    for manifest in manifests:
        services = ", ".join(spec.name for spec in manifest.services) or "-"
        versions = {spec.name for block in manifest.when for spec in block.services}
        if versions - {spec.name for spec in manifest.services}:
            services += " (+ " + ", ".join(sorted(versions)) + " for some releases)"
        table.add_row(
            f"{manifest.name}\n[dim]{escape(manifest.description)}",
            manifest.distribution,
            manifest.version,
            manifest.versions or "-",
            ", ".join(manifest.matrix),
            services,
            _probe_summary(manifest),
        )
    console.print(table)


def _probe_summary(manifest: Manifest) -> str:
    probe = manifest.probe
    if probe is None:
        return "-"
    target = probe.callable.rpartition(":")[2] if probe.args is None else "generic"
    module = probe.callable.rpartition(":")[0].rsplit(".", 1)[-1]
    return f"{module}:{target} x{probe.concurrency}, {probe.delay:g} s"
