"""What ``greenpatch compat`` shows on the terminal: a live progress bar per suite
with pass/fail counts, and a summary table at the end (rich, from the
``greenpatch[compat]`` extra)."""

from __future__ import annotations

import threading
from pathlib import Path

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
from greenpatch.reports.model import Result

__all__ = ["ProgressListener", "print_suites", "print_summary", "summary_console"]

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


def _mode_cell(result: Result, mode: str) -> str:
    summary = result.modes.get(mode)
    if summary is None or not summary.ran:
        return "-"
    counts = summary.counts
    failing = sum(counts.get(name, 0) for name in _FAILING)
    skipped = counts.get("skipped", 0) + counts.get("deselected", 0)
    hangs = f", {summary.watchdog_seconds:.0f} s in hangs" if summary.watchdog_seconds else ""
    return (
        f"{counts.get('passed', 0)} passed, {failing} failed, {skipped} skipped "
        f"({summary.duration:.1f} s{hangs})"
    )


def _probe_cell(result: Result) -> str:
    probe = result.probe
    if not probe:
        return "-"
    if probe.get("error"):
        return f"[red]error:[/] {escape(_gist(str(probe['error']), 60))}"
    verdict = "[green]cooperative" if probe.get("cooperative") else "[red]blocking"
    return f"{verdict} ({float(probe.get('factor', 0.0)):.1f}x of {probe.get('concurrency')})"


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


def print_summary(console: Console, results: list[tuple[Result, Path]]) -> None:
    table = Table(title="greenpatch compat", show_lines=True)
    table.caption = "time x: patched / plain, less the time spent waiting out hung tests"
    for column in ("suite", "plain", "patched", "time x", "verdicts", "probe", "result"):
        table.add_column(column)
    for result, path in results:
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
        elif result.incomplete:
            verdicts = f"[yellow]incomplete[/]; {verdicts}"
        table.add_row(
            escape(f"{result.suite} {result.version}\nPython {result.python}"),
            _mode_cell(result, "plain"),
            _mode_cell(result, "patched"),
            ratio,
            verdicts or "-",
            _probe_cell(result),
            escape(str(path)),
        )
    console.print(table)
    for result, _ in results:
        for test in result.regressions():
            lines = (test.error or "?").strip().splitlines() or ["?"]
            # A failure ends with the exception; a hang or crash starts with what happened.
            line = lines[0] if test.patched in ("hung", "crashed") else lines[-1]
            where = escape(f"{result.suite}: {test.nodeid}: {line[:160]}")
            console.print(f"[red]regression[/] {where}")


def print_suites(console: Console, manifests: list[Manifest]) -> None:
    table = Table(title="built-in suites")
    for column in ("suite", "distribution", "version", "services", "description"):
        table.add_column(column)
    for manifest in manifests:
        services = ", ".join(spec.name for spec in manifest.services) or "-"
        table.add_row(
            manifest.name,
            manifest.distribution,
            manifest.version,
            services,
            escape(manifest.description),
        )
    console.print(table)
