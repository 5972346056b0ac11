"""Run CPython's own tests of the patched modules, plain and under the patch, and compare.

    python tools/stdlib_tests.py                       # the default modules
    python tools/stdlib_tests.py test_socket --hang-timeout 30
    python tools/stdlib_tests.py --skip-plain test_time  # reuse the last plain run

Each module runs twice, each time in its own subprocess:

* plain:   ``python tools/_stdlib_runner.py test.MODULE``
* patched: ``python -m greenpatch run tools/_stdlib_runner.py test.MODULE``

The runner writes one JSON event per test (see ``_stdlib_runner.py``).  A test
counts against greenpatch only when it *passes plain and fails patched*.  Such
a failure is *expected* when ``tools/stdlib_expected.toml`` lists it with a
reason (the tests' source is never edited); otherwise it is a regression and the
script exits with status 1.

Hangs and crashes
-----------------
A patched run can hang the loop.  The runner's watchdog thread ends a test that
makes no progress for ``--hang-timeout`` seconds (writing every thread's and
greenlet's stack first), and this script kills a run that writes no event for
longer still.  Either way the test is recorded as ``hang`` (or ``crash`` when the
process died) and the run resumes with that test and every test already reported
left out.  ``--module-timeout`` bounds a whole module, restarts included.

Times are wall-clock seconds of the subprocesses (interpreter start included).
The time a run spent waiting on a hung test is reported apart, because the
watchdog's patience, not greenpatch, decides it.

Output: a table on stdout, and in ``--out-dir`` (``reports/stdlib/`` by default)
the event files and logs of every run plus ``summary.json``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by the 3.9/3.10 tox envs
    import tomli as tomllib  # type: ignore[import-not-found]

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
RUNNER = TOOLS / "_stdlib_runner.py"
DEFAULT_EXPECTED = TOOLS / "stdlib_expected.toml"
DEFAULT_OUT_DIR = ROOT / "reports" / "stdlib"
DEFAULT_MODULES = (
    "test_socket",
    "test_select",
    "test_selectors",
    "test_time",
    "test_threading",
    "test_queue",
    "test_ssl",
    "test_subprocess",
    "test_os",
    "test_threading_local",
    "test_signal",
    # asyncio's loops with threads: to_thread, run_in_executor and
    # call_soon_threadsafe, run_coroutine_threadsafe, wrap_future, threaded
    # servers and clients (ssl too), and child watchers (ThreadedChildWatcher
    # waits in a thread; the others rely on SIGCHLD and set_wakeup_fd).
    "test.test_asyncio.test_threads",
    "test.test_asyncio.test_events",
    "test.test_asyncio.test_base_events",
    "test.test_asyncio.test_tasks",
    "test.test_asyncio.test_futures",
    "test.test_asyncio.test_subprocess",
    "test.test_asyncio.test_ssl",
)

#: Patched outcomes that count as "fails patched" for a test that passed plain.
FAILING = frozenset({"fail", "error", "hang", "crash", "notrun", "missing", "excluded"})
_MAX_RESTARTS = 50


# -- expectations --------------------------------------------------------------------
@dataclass(frozen=True)
class Expectation:
    """One row of ``stdlib_expected.toml``: a test id (or fnmatch pattern) and why."""

    module: str
    pattern: str
    reason: str
    when: str = ""
    skip: bool = False  # left out of the patched run (it hangs, or only waits out a timeout)
    exclude: bool = False  # left out of both runs (e.g. it hangs plain in this environment)

    def matches(self, test_id: str) -> bool:
        return fnmatch.fnmatchcase(test_id, self.pattern)


_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\d+(?:\.\d+)*)\s*$")


def version_matches(when: str, version: Sequence[int]) -> bool:
    """Whether ``version`` satisfies ``when``, e.g. ``">=3.12"`` or ``">=3.10, <3.13"``.

    Each clause compares as many components as it names: ``"==3.11"`` holds for
    every 3.11.x.  An empty condition always holds.
    """
    if not when.strip():
        return True
    for clause in when.split(","):
        match = _CLAUSE.match(clause)
        if match is None:
            raise ValueError(f"bad version condition {clause.strip()!r} in when = {when!r}")
        op, text = match.groups()
        wanted = tuple(int(part) for part in text.split("."))
        have = tuple(version[: len(wanted)])
        ok = {
            ">=": have >= wanted,
            "<=": have <= wanted,
            "==": have == wanted,
            "!=": have != wanted,
            ">": have > wanted,
            "<": have < wanted,
        }[op]
        if not ok:
            return False
    return True


def load_expectations(path: Path, version: Sequence[int]) -> dict[str, list[Expectation]]:
    """Module -> the expectations that apply to ``version``.

    A table per module; each key is a test id relative to the module
    (``Class.test_name``, fnmatch patterns allowed) and each value either the
    reason, or a table with ``reason`` and optionally ``when`` (a Python version
    condition), ``skip = true`` (leave it out of the patched run: it hangs, or
    fails only after waiting out a long timeout) and
    ``exclude = true`` (leave it out of both runs).
    """
    if not path.exists():
        return {}
    with path.open("rb") as file:
        data = tomllib.load(file)
    found: dict[str, list[Expectation]] = {}
    for module, entries in data.items():
        if not isinstance(entries, dict):
            raise ValueError(f"{path}: [{module}] must be a table of test ids")
        for pattern, value in entries.items():
            if isinstance(value, str):
                row = Expectation(module, pattern, value)
            elif isinstance(value, dict):
                unknown = set(value) - {"reason", "when", "skip", "exclude"}
                if unknown or not isinstance(value.get("reason"), str):
                    raise ValueError(
                        f"{path}: [{module}] {pattern!r} needs a reason (string) and may have "
                        f"when, skip and exclude; unknown keys: {sorted(unknown)}"
                    )
                row = Expectation(
                    module,
                    pattern,
                    value["reason"],
                    str(value.get("when", "")),
                    bool(value.get("skip", False)),
                    bool(value.get("exclude", False)),
                )
            else:
                raise ValueError(f"{path}: [{module}] {pattern!r}: expected a reason string")
            if version_matches(row.when, version):
                found.setdefault(module, []).append(row)
    return found


# -- one run of one module -------------------------------------------------------------
@dataclass
class TestOutcome:
    outcome: str
    detail: str = ""
    duration: float = 0.0


@dataclass
class RunRecord:
    """Everything one mode (plain or patched) of one module produced."""

    module: str
    mode: str
    outcomes: dict[str, TestOutcome] = field(default_factory=dict)
    collected: list[str] = field(default_factory=list)
    patches: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    hang_wait: float = 0.0
    restarts: int = 0
    problems: list[str] = field(default_factory=list)
    finished: bool = False


def module_name(module: str) -> str:
    """``test_socket`` -> ``test.test_socket``; a dotted name is taken as it is."""
    return module if "." in module else f"test.{module}"


def relative_id(module: str, test_id: str) -> str:
    prefix = module_name(module) + "."
    return test_id[len(prefix) :] if test_id.startswith(prefix) else test_id


def read_events(path: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    if not path.exists():
        return events
    with path.open(encoding="utf-8") as file:
        for line in file:
            try:
                events.append(json.loads(line))
            except ValueError:
                continue  # the last line of a killed run may be cut short
    return events


@dataclass
class RunConfig:
    python: str
    out_dir: Path
    hang_timeout: float
    module_timeout: float
    paths: list[str]
    run_options: list[str]
    env: dict[str, str]
    max_hangs: int = 10


def _command(config: RunConfig, module: str, mode: str, events: Path, exclude: Path) -> list[str]:
    runner_args = [
        str(RUNNER),
        module_name(module),
        "--events",
        str(events),
        "--exclude-file",
        str(exclude),
        "--hang-timeout",
        str(config.hang_timeout),
    ]
    for path in config.paths:
        runner_args += ["--path", path]
    if mode == "plain":
        return [config.python, *runner_args]
    return [config.python, "-m", "greenpatch", "run", *config.run_options, *runner_args]


def _kill(process: subprocess.Popen[bytes]) -> None:
    """End the run and whatever it started (it leads its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _log_tail(log: Path, since: int, limit: int = 3000) -> str:
    with log.open("rb") as file:
        file.seek(since)
        text = file.read().decode("utf-8", "replace")
    return text[-limit:]


def _supervise(
    process: subprocess.Popen[bytes],
    events_path: Path,
    idle_limit: float,
    deadline: float,
    config: RunConfig,
) -> str:
    """Wait for the run to end; kill it when it hangs.  Returns why it was killed, or ""."""
    last_event = time.monotonic()
    size = 0
    while process.poll() is None:
        time.sleep(0.2)
        new_size = events_path.stat().st_size if events_path.exists() else 0
        now = time.monotonic()
        killed = ""
        if new_size != size:
            size, last_event = new_size, now
        elif now - last_event > idle_limit:
            killed = f"no event for {idle_limit:.0f}s"
        if now > deadline:
            killed = f"module timeout ({config.module_timeout:.0f}s)"
        if killed:
            _kill(process)
            return killed
    return ""


def run_module(config: RunConfig, module: str, mode: str, exclude: Sequence[str] = ()) -> RunRecord:
    """Run ``module`` in ``mode`` to the end, restarting past tests that hang or crash.

    ``exclude``: test ids or fnmatch patterns to leave out.
    """
    record = RunRecord(module, mode)
    stem = f"{module}.{mode}"
    events_path = config.out_dir / f"{stem}.jsonl"
    log_path = config.out_dir / f"{stem}.log"
    exclude_path = config.out_dir / f"{stem}.exclude"
    for path in (events_path, log_path):
        path.unlink(missing_ok=True)
    excluded = set(exclude)
    idle_limit = config.hang_timeout + 45  # the runner's own watchdog acts first
    deadline = time.monotonic() + config.module_timeout
    env = dict(os.environ, **config.env)
    env["PYTHONFAULTHANDLER"] = "1"
    consumed = 0  # events already read

    while True:
        exclude_path.write_text("".join(f"{test_id}\n" for test_id in sorted(excluded)))
        command = _command(config, module, mode, events_path, exclude_path)
        log_start = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as log:
            log.write(f"\n$ {' '.join(command)}\n".encode())
            log.flush()
            started = time.monotonic()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(ROOT),
                env=env,
                start_new_session=True,
            )
            try:
                killed = _supervise(process, events_path, idle_limit, deadline, config)
            finally:
                if process.poll() is None:  # interrupted: leave nothing running
                    _kill(process)
            record.elapsed += time.monotonic() - started
        events = read_events(events_path)
        new, consumed = events[consumed:], len(events)
        done = False
        current: str | None = None
        hang_stacks = ""
        progressed = False
        for event in new:
            kind = event.get("event")
            if kind == "collected":
                if not record.collected:
                    record.collected = list(event["ids"])
                    record.patches = list(event.get("patches", []))
            elif kind == "start":
                current = event["id"]
            elif kind == "result":
                record.outcomes[event["id"]] = TestOutcome(
                    event["outcome"], event.get("detail", ""), event.get("duration", 0.0)
                )
                excluded.add(event["id"])
                progressed = True
                if event["id"] == current:
                    current = None
            elif kind == "hang":
                current = event["id"]
                hang_stacks = event.get("stacks", "")
            elif kind == "load_error":
                record.problems.append(f"load error: {event.get('detail', '')}")
            elif kind == "done":
                done = True
        if done:
            record.finished = True
            break
        tail = _log_tail(log_path, log_start)
        if current is not None and current not in record.outcomes:
            if hang_stacks or killed.startswith("no event"):
                record.hang_wait += config.hang_timeout
                outcome = TestOutcome("hang", hang_stacks or tail)
            else:
                status = process.returncode if not killed else killed
                outcome = TestOutcome("crash", f"run ended ({status}) during the test\n{tail}")
            record.outcomes[current] = outcome
            excluded.add(current)
            progressed = True
        elif hang_stacks:
            # The test had reported its result: a class or module fixture hung.
            record.problems.append(f"hang after {current} (a fixture?)\n{hang_stacks}")
        hangs = sum(1 for o in record.outcomes.values() if o.outcome == "hang")
        if hangs >= config.max_hangs:
            record.problems.append(
                f"stopped after {hangs} hung tests (--max-hangs); the rest did not run"
            )
            break
        if killed.startswith("module timeout") or not record.collected:
            record.problems.append(killed or f"the run ended before collecting tests\n{tail}")
            break
        if not progressed or record.restarts >= _MAX_RESTARTS:
            record.problems.append(
                f"run ended without progress (exit {process.returncode})\n{tail}"
            )
            break
        record.restarts += 1
    for test_id in record.collected:
        if any(fnmatch.fnmatchcase(test_id, pattern) for pattern in exclude):
            record.outcomes.setdefault(test_id, TestOutcome("excluded"))
        else:
            record.outcomes.setdefault(test_id, TestOutcome("missing", "never reported"))
    return record


def load_record(config: RunConfig, module: str, mode: str) -> RunRecord | None:
    """A previous run's record, rebuilt from its event file (for ``--skip-plain``)."""
    summary = config.out_dir / "summary.json"
    events = read_events(config.out_dir / f"{module}.{mode}.jsonl")
    if not events:
        return None
    record = RunRecord(module, mode, finished=any(e.get("event") == "done" for e in events))
    for event in events:
        if event.get("event") == "collected" and not record.collected:
            record.collected = list(event["ids"])
        elif event.get("event") == "result":
            record.outcomes[event["id"]] = TestOutcome(event["outcome"], event.get("detail", ""))
    for test_id in record.collected:  # left out of that run by the expectations
        record.outcomes.setdefault(test_id, TestOutcome("excluded"))
    if summary.exists():
        previous = json.loads(summary.read_text()).get("modules", {}).get(module, {})
        record.elapsed = float(previous.get(f"{mode}_time", 0.0))
    if not record.elapsed:  # not in summary.json (that invocation was interrupted)
        record.elapsed = sum(
            float(e.get("elapsed", 0.0)) for e in events if e.get("event") == "done"
        )
    return record


# -- comparing ---------------------------------------------------------------------------
@dataclass
class Regression:
    test: str
    outcome: str
    detail: str
    reason: str | None  # the expectation's reason, None when unexpected


@dataclass
class ModuleReport:
    module: str
    plain_passed: int
    plain_total: int
    patched_failures: int
    expected: list[Regression]
    unexpected: list[Regression]
    skipped_patched: list[str]
    stale_expectations: list[str]
    plain_time: float
    patched_time: float
    patched_hang_wait: float
    patches: list[str]
    problems: list[str]

    @property
    def ratio(self) -> float:
        return self.patched_time / self.plain_time if self.plain_time else float("nan")


def compare(plain: RunRecord, patched: RunRecord, expectations: list[Expectation]) -> ModuleReport:
    module = plain.module
    passed = sorted(t for t, o in plain.outcomes.items() if o.outcome == "pass")
    expected: list[Regression] = []
    unexpected: list[Regression] = []
    skipped: list[str] = []
    used: set[str] = set()
    for test_id in passed:
        result = patched.outcomes.get(test_id, TestOutcome("missing", "not in the patched run"))
        if result.outcome == "skip":
            skipped.append(relative_id(module, test_id))
            continue
        if result.outcome not in FAILING:
            continue
        rel = relative_id(module, test_id)
        match = next((e for e in expectations if e.matches(rel)), None)
        entry = Regression(rel, result.outcome, result.detail, match.reason if match else None)
        if match is not None:
            used.add(match.pattern)
            expected.append(entry)
        else:
            unexpected.append(entry)
    # Listed, in this Python's suite, but not failing patched: the list should
    # shrink.  (A row that matches no test is for another Python: not stale.)
    present = [
        row
        for row in expectations
        if any(row.matches(relative_id(module, t)) for t in plain.outcomes)
    ]
    stale = [row.pattern for row in present if row.pattern not in used and not row.exclude]
    return ModuleReport(
        module=module,
        plain_passed=len(passed),
        plain_total=len(plain.outcomes),
        patched_failures=len(expected) + len(unexpected),
        expected=expected,
        unexpected=unexpected,
        skipped_patched=skipped,
        stale_expectations=stale,
        plain_time=round(plain.elapsed, 2),
        patched_time=round(patched.elapsed, 2),
        patched_hang_wait=round(patched.hang_wait, 2),
        patches=patched.patches,
        problems=[f"plain: {p}" for p in plain.problems]
        + [f"patched: {p}" for p in patched.problems],
    )


# -- output -------------------------------------------------------------------------------
COLUMNS = (
    "module",
    "plain passed",
    "patched failures",
    "expected",
    "regressions",
    "plain s",
    "patched s",
    "ratio",
)


def table_rows(reports: Sequence[ModuleReport]) -> list[list[str]]:
    rows = []
    for report in reports:
        rows.append(
            [
                report.module,
                str(report.plain_passed),
                str(report.patched_failures),
                str(len(report.expected)),
                str(len(report.unexpected)),
                f"{report.plain_time:.1f}",
                f"{report.patched_time:.1f}",
                f"{report.ratio:.2f}",
            ]
        )
    return rows


def render_table(reports: Sequence[ModuleReport], markdown: bool = False) -> str:
    rows = table_rows(reports)
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(COLUMNS, widths))
        )
    ]
    for row in rows:
        lines.append(
            "  ".join(
                v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))
            )
        )
    return "\n".join(lines)


def render_details(reports: Sequence[ModuleReport]) -> str:
    lines = []
    for report in reports:
        for problem in report.problems:
            lines.append(f"{report.module}: PROBLEM {problem.splitlines()[0]}")
        for entry in report.unexpected:
            first = _first_error_line(entry.detail)
            lines.append(f"{report.module}: REGRESSION {entry.test} [{entry.outcome}] {first}")
        for entry in report.expected:
            lines.append(
                f"{report.module}: expected {entry.test} [{entry.outcome}]: {entry.reason}"
            )
        for test in report.skipped_patched:
            lines.append(f"{report.module}: passes plain, skipped patched: {test}")
        for pattern in report.stale_expectations:
            lines.append(f"{report.module}: listed but not failing: {pattern}")
        if report.patched_hang_wait:
            lines.append(
                f"{report.module}: {report.patched_hang_wait:.0f}s of the patched time "
                "waited on hung tests"
            )
    return "\n".join(lines)


def _first_error_line(detail: str) -> str:
    lines = [line for line in detail.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:160] if lines else ""


def summary_document(reports: Sequence[ModuleReport], python: str) -> dict[str, Any]:
    return {
        "python": python,
        "modules": {
            report.module: {
                **{k: v for k, v in asdict(report).items() if k != "module"},
                "ratio": round(report.ratio, 3),
            }
            for report in reports
        },
    }


# -- main -----------------------------------------------------------------------------------
def _python_version(python: str) -> tuple[int, ...]:
    out = subprocess.run(
        [python, "-c", "import sys; print(*sys.version_info[:3])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return tuple(int(part) for part in out.split())


def _excluded(rows: Sequence[Expectation], module: str, mode: str) -> list[str]:
    """The id patterns to leave out of a run of ``module`` in ``mode``."""
    return [
        f"{module_name(module)}.{row.pattern}"
        for row in rows
        if row.exclude or (row.skip and mode == "patched")
    ]


def _path_env(paths: Sequence[str]) -> dict[str, str]:
    """``PYTHONPATH`` with ``paths`` first, so that they also win for ``-m greenpatch``.

    The runner prepends ``--path`` to its own ``sys.path``, but a patched run imports
    greenpatch (``python -m greenpatch run``) before the runner starts: only
    ``PYTHONPATH`` puts another tree (e.g. an old commit's ``src``) ahead of the
    installed one there.
    """
    if not paths:
        return {}
    inherited = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": os.pathsep.join([*paths, *([inherited] if inherited else [])])}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Run CPython's tests of the patched modules plain and patched; compare."
    )
    parser.add_argument(
        "modules",
        nargs="*",
        default=list(DEFAULT_MODULES),
        help=f"test modules (default: {' '.join(DEFAULT_MODULES)}); "
        "a dotted name is imported as it is",
    )
    parser.add_argument("--expected", type=Path, default=DEFAULT_EXPECTED)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--python", default=sys.executable, help="the interpreter to test")
    parser.add_argument(
        "--hang-timeout",
        type=float,
        default=60.0,
        help="seconds one test may run before it counts as hung (default 60)",
    )
    parser.add_argument(
        "--module-timeout",
        type=float,
        default=1800.0,
        help="seconds for one module's run, restarts included (default 1800)",
    )
    parser.add_argument(
        "--max-hangs",
        type=int,
        default=10,
        help="stop a module's run after this many hung tests (default 10)",
    )
    parser.add_argument(
        "--path",
        action="append",
        default=[],
        help="prepend to the runs' sys.path and PYTHONPATH (e.g. another tree's src)",
    )
    parser.add_argument(
        "--run-option",
        action="append",
        default=[],
        help="passed to `greenpatch run` (e.g. --run-option=--no-thread)",
    )
    parser.add_argument(
        "--skip-plain", action="store_true", help="reuse the plain results of the last run"
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--max-ratio",
        type=float,
        default=None,
        help="also fail when a module's patched/plain time ratio exceeds this",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    version = _python_version(args.python)
    expectations = load_expectations(args.expected, version)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    paths = [str(Path(p).resolve()) for p in args.path]
    config = RunConfig(
        python=args.python,
        out_dir=args.out_dir.resolve(),
        hang_timeout=args.hang_timeout,
        module_timeout=args.module_timeout,
        paths=paths,
        run_options=list(args.run_option),
        env=_path_env(paths),
        max_hangs=args.max_hangs,
    )
    # A SIGTERM (tox, CI) must still stop the run in flight: it leads its own session.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    reports = []
    for module in args.modules:
        rows = expectations.get(module, [])
        plain = load_record(config, module, "plain") if args.skip_plain else None
        if plain is None:
            print(f"{module}: plain ...", file=sys.stderr, flush=True)
            plain = run_module(config, module, "plain", exclude=_excluded(rows, module, "plain"))
        print(f"{module}: patched ...", file=sys.stderr, flush=True)
        patched = run_module(config, module, "patched", exclude=_excluded(rows, module, "patched"))
        reports.append(compare(plain, patched, rows))
    summary = summary_document(reports, ".".join(map(str, version)))
    summary_path = config.out_dir / "summary.json"
    if summary_path.exists():  # keep the modules this invocation did not run
        previous = json.loads(summary_path.read_text())
        if previous.get("python") == summary["python"]:
            summary["modules"] = {**previous.get("modules", {}), **summary["modules"]}
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(render_table(reports, markdown=args.markdown))
    details = render_details(reports)
    if details:
        print()
        print(details)
    print(f"\nevents, logs and summary.json: {config.out_dir}")
    failed = any(r.unexpected or r.problems for r in reports)
    if args.max_ratio is not None:
        failed = failed or any(r.ratio > args.max_ratio for r in reports)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
