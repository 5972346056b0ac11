"""One run of a suite (plain or patched) in subprocesses, under an outside watchdog.

Why outside: under the patch, one C-level blocking call (a C extension's
``sleep``, a lock taken without the hub) freezes the whole loop, and with it any
in-process timeout.  So the suite runs in a child process that streams its
events (``pytest_plugin.py``) to a JSONL file, and this module watches the file:

- a test that has started and not finished within ``per_test_timeout``, or a
  process that reports nothing for twice that outside a test, is *hung*: its
  stacks are dumped (SIGUSR1 -> faulthandler, SIGUSR2 -> threads and greenlets),
  the process group is killed, and the test recorded as hung with those stacks;
- a process that dies in a test (signal, ``os._exit``) records that test as
  *crashed*, with the tail of its output (faulthandler's report of a segfault);
- either way pytest starts again, deselecting everything already seen, until
  the suite is done -- so one bad test costs one test, not the run.

A whole-run deadline (``run_timeout``) bounds the lot; hitting it, or Ctrl-C,
leaves a run marked incomplete with everything seen so far.

A service the harness started (``RunSpec.service_check``) is checked on every
turn of the watchdog loop: once it is gone, every later failure would be the
service's fault, not the patch's.  The run stops there, results reported after
the service was last seen alive are dropped (their tests count as not run), and
``ModeRun.service_lost`` says what happened.

The child is killed as a process group whenever it ends (even after a clean
exit or a crash of pytest itself), so that servers and workers a suite started
never outlive their run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from greenpatch.compat_tests._protocol import CONFIG_ENV, PLUGIN, STACKS_DONE_MARKER

__all__ = ["CANCEL", "ModeRun", "RunSpec", "TestRecord", "build_command", "run_mode"]

#: Set to stop every run in this process (Ctrl-C with --jobs > 1: the signal
#: reaches only the main thread, the runs go on in workers).  A run that sees it
#: kills its child and raises KeyboardInterrupt in its own thread.
CANCEL = threading.Event()

_POLL_SECONDS = 0.05
_STACK_DUMP_WAIT = 3.0
_LOG_TAIL_LINES = 40
#: pytest exit statuses that mean the session did not run the suite properly.
_BROKEN_EXIT_CODES = {2: "was interrupted", 3: "hit an internal error", 4: "usage error"}
#: Give up resuming after this many hung/crashed processes in one run.
_MAX_PROCESSES = 200

EventCallback = Callable[[str, dict[str, Any]], None]


@dataclass
class TestRecord:
    """What one test did in one run."""

    __test__ = False

    nodeid: str
    outcome: str
    duration: float = 0.0
    detail: str | None = None
    network: list[str] = field(default_factory=list)
    stacks: str | None = None


@dataclass
class RunSpec:
    """Everything a run needs, the same for both modes."""

    python: str
    cwd: Path
    pytest_args: list[str]
    work_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    deselect: list[dict[str, str]] = field(default_factory=list)
    per_test_timeout: float = 60.0
    run_timeout: float = 1800.0
    allow_network: bool = False
    #: Environment variables set only in the patched run (the stall monitor's).
    patched_env: dict[str, str] = field(default_factory=dict)
    #: ``patch_all`` flags the patched run leaves out (``greenpatch run --without``).
    without: list[str] = field(default_factory=list)
    #: Stop the run after this many resumed processes in a row hung on their first test.
    max_hangs_in_a_row: int = 3
    #: Polled on every turn of the watchdog: a message when a service the suite
    #: needs (one the harness started) is gone, else None.
    service_check: Callable[[], str | None] | None = None


@dataclass
class ModeRun:
    mode: str
    records: dict[str, TestRecord] = field(default_factory=dict)
    #: Deselected by the manifest: node id -> reason.
    deselected: dict[str, str] = field(default_factory=dict)
    collected: int = 0
    duration: float = 0.0
    processes: int = 0
    exit_codes: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    incomplete: bool = False
    #: Stopped by Ctrl-C/SIGTERM (or CANCEL): the caller should stop too.
    interrupted: bool = False
    #: Seconds spent waiting out hung tests (see ModeSummary.watchdog_seconds).
    watchdog_seconds: float = 0.0
    #: Set when a service died under the run (RunSpec.service_check's message).
    service_lost: str | None = None

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.records.values():
            counts[record.outcome] = counts.get(record.outcome, 0) + 1
        if self.deselected:
            counts["deselected"] = len(self.deselected)
        return counts


def build_command(
    python: str, mode: str, pytest_args: list[str], without: Sequence[str] = ()
) -> list[str]:
    """The child's command line: pytest, patched first thing in the patched run
    (leaving out the ``patch_all`` flags in ``without``)."""
    # A module that fails to import costs its own tests (recorded as a collection
    # error), not the whole run.
    pytest = ["-m", "pytest", "-p", PLUGIN, "-p", "no:cacheprovider"]
    pytest += ["--continue-on-collection-errors", *pytest_args]
    if mode == "patched":
        # `greenpatch run` patches before pytest is imported and refuses an
        # unknown flag itself (exit 2, the run "ran no test"): the suite's
        # environment may know other plugins than the harness's.
        left_out = [arg for flag in without for arg in ("--without", flag)]
        return [python, "-m", "greenpatch", "run", *left_out, *pytest]
    return [python, *pytest]


def run_mode(
    spec: RunSpec,
    mode: str,
    only: list[str] | None = None,
    on_event: EventCallback | None = None,
) -> ModeRun:
    """Run the suite in ``mode`` ("plain" or "patched") to the end, resuming after
    hangs and crashes.  ``only`` restricts the run to those node ids (re-runs).

    Ctrl-C does not lose what was seen: the child is killed and the partial run
    returned with ``interrupted`` set; the caller records it, then stops.
    """
    run = ModeRun(
        mode=mode, command=build_command(spec.python, mode, spec.pytest_args, spec.without)
    )
    spec.work_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    deadline = started + spec.run_timeout
    try:
        hangs_in_a_row: list[str] = []
        while run.processes < _MAX_PROCESSES:
            seen = len(run.records)
            finished = _one_process(spec, mode, run, only, deadline, on_event)
            if finished:
                break
            # One new record, and it is a hang: the process hung on its first test.
            last = list(run.records.values())[-1] if len(run.records) == seen + 1 else None
            if last is None or last.outcome != "hung":
                hangs_in_a_row.clear()
                continue
            hangs_in_a_row.append(last.nodeid)
            if len(hangs_in_a_row) >= spec.max_hangs_in_a_row:
                # Something shared (a session fixture's server, a frozen loop)
                # hangs every test now: each would cost a per-test timeout.
                run.incomplete = True
                run.errors.append(
                    f"{len(hangs_in_a_row)} tests hung in a row, each first in a fresh "
                    f"process ({', '.join(hangs_in_a_row)}): the run stops here and the "
                    "tests not reached are reported as not run; see the hung tests' stacks"
                )
                break
    except KeyboardInterrupt:
        run.incomplete = run.interrupted = True
    finally:
        run.duration = time.monotonic() - started
    return run


class _Child:
    """One pytest process and the files it writes."""

    def __init__(self, spec: RunSpec, mode: str, run: ModeRun, only: list[str] | None) -> None:
        tag = f"{mode}-{'rerun-' if only is not None else ''}{run.processes}"
        self.events_path = spec.work_dir / f"{tag}.events.jsonl"
        self.stacks_path = spec.work_dir / f"{tag}.stacks.txt"
        self.log_path = spec.work_dir / f"{tag}.log"
        for path in (self.events_path, self.stacks_path):
            path.write_text("")
        config = {
            "mode": mode,
            "events": str(self.events_path),
            "stacks": str(self.stacks_path),
            "skip": sorted(run.records),
            "only": only,
            "deselect": spec.deselect,
            "allow_network": spec.allow_network,
        }
        config_path = spec.work_dir / f"{tag}.config.json"
        config_path.write_text(json.dumps(config))
        env = dict(os.environ)
        env.update(spec.env)
        if mode == "patched":
            env.update(spec.patched_env)
            # The stall monitor reports a path library's installed files at their
            # place in the tree the tests run from (stall.SourceMap).  Named here,
            # not imported from stall.py, which imports the hub.
            env["GREENPATCH_STALL_SOURCE_ROOT"] = str(Path(spec.cwd).resolve())
        env[CONFIG_ENV] = str(config_path)
        env["PYTHONFAULTHANDLER"] = "1"
        self.log: IO[bytes] = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            run.command,
            cwd=spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            # Its own process group: Ctrl-C reaches only us, and a kill reaches
            # whatever the suite itself started (servers, workers).
            start_new_session=True,
        )
        try:
            self.events: IO[str] = open(self.events_path, encoding="utf-8")
        except BaseException:
            # Ctrl-C (or a vanished work dir) right after the start: the child is
            # in its own session, so nobody but us would ever stop it.
            self.kill()
            self.log.close()
            raise
        self.pending = ""

    def read_events(self) -> list[dict[str, Any]]:
        self.pending += self.events.read()
        *lines, self.pending = self.pending.split("\n")
        return [json.loads(line) for line in lines if line.strip()]

    def signal(self, signum: int) -> None:
        try:
            os.kill(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the whole process group: pytest and whatever the suite started."""
        self._kill_group()
        self.process.wait()

    def _kill_group(self) -> None:
        # The group outlives its leader while any member lives, and Linux does
        # not reuse a pid that is still some group's id: after pytest is gone
        # this reaches only the suite's leftovers (or nothing, ESRCH).
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def dump_stacks(self) -> str:
        """Ask the stuck process for its stacks; give it a few seconds."""
        offset = self.stacks_path.stat().st_size
        self.signal(signal.SIGUSR1)  # faulthandler: C-level, always answers
        self.signal(signal.SIGUSR2)  # Python: threads and greenlets, if it gets a turn
        give_up = time.monotonic() + _STACK_DUMP_WAIT
        while time.monotonic() < give_up and self.process.poll() is None:
            if STACKS_DONE_MARKER in self.stacks_path.read_text(errors="replace")[offset:]:
                break
            time.sleep(_POLL_SECONDS)
        return self.stacks_path.read_text(errors="replace")[offset:].strip()

    def log_tail(self) -> str:
        """The end of the child's output; from faulthandler's report when there is one."""
        self.log.flush()
        text = self.log_path.read_text(errors="replace")
        fatal = text.rfind("Fatal Python error")
        lines = text[fatal:].splitlines() if fatal >= 0 else text.splitlines()[-_LOG_TAIL_LINES:]
        if len(lines) > _LOG_TAIL_LINES:
            lines = [*lines[:10], "...", *lines[-(_LOG_TAIL_LINES - 11) :]]
        return "\n".join(lines)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        else:
            # pytest ended (finished, crashed, or was killed from outside):
            # servers and workers the suite started may still be running.
            self._kill_group()
        self.events.close()
        self.log.close()


class _Events:
    """What one pytest process has reported so far, taken from its event stream."""

    def __init__(self, run: ModeRun, on_event: EventCallback | None) -> None:
        self.run, self.on_event = run, on_event
        self.current: str | None = None
        self.current_since = self.last_seen = time.monotonic()
        self.finished_session = False

    def take(self, events: list[dict[str, Any]], dropped_after: float | None = None) -> None:
        """Record ``events``; those stamped later than ``dropped_after`` are ignored."""
        run = self.run
        for event in events:
            self.last_seen = time.monotonic()
            kind = event.get("event")
            if dropped_after is not None and float(event.get("time", 0.0)) > dropped_after:
                continue  # after a service died: not evidence about the patch
            if kind == "start":
                self.current, self.current_since = event["nodeid"], self.last_seen
            elif kind == "result":
                run.records[event["nodeid"]] = TestRecord(
                    nodeid=event["nodeid"],
                    outcome=event["outcome"],
                    duration=float(event.get("duration", 0.0)),
                    detail=event.get("detail"),
                    network=list(event.get("network", [])),
                )
                self.current = None
            elif kind == "collected":
                run.collected = max(run.collected, int(event["count"]) + len(run.records))
                for item in event.get("deselected", []):
                    run.deselected[item["nodeid"]] = item["reason"]
            elif kind == "collect_error":
                run.errors.append(f"collection error in {event['nodeid']}:\n{event['longrepr']}")
            elif kind == "session_finish":
                self.finished_session = True
            if self.on_event is not None and isinstance(kind, str):
                self.on_event(kind, event)


def _one_process(
    spec: RunSpec,
    mode: str,
    run: ModeRun,
    only: list[str] | None,
    deadline: float,
    on_event: EventCallback | None,
) -> bool:
    """Run one pytest process; True when the run is over (done, or no point resuming)."""
    child = _Child(spec, mode, run, only)
    run.processes += 1
    seen = _Events(run, on_event)
    # Wall-clock time (the child's events carry time.time()) when every service
    # was last seen alive: results reported later may be the loss's doing.
    services_alive_at = time.time()
    try:
        while True:
            checked_at = time.time()
            lost = spec.service_check() if spec.service_check is not None else None
            exited = child.process.poll() is not None
            seen.take(child.read_events(), services_alive_at if lost is not None else None)
            if lost is not None:
                run.service_lost = lost
                run.incomplete = True
                run.errors.append(
                    f"{lost}; the run stopped there (tests not finished before are not judged)"
                )
                child.kill()
                return True
            services_alive_at = checked_at
            if exited:
                break
            if CANCEL.is_set():
                run.incomplete = True
                raise KeyboardInterrupt
            now = time.monotonic()
            if now > deadline:
                run.incomplete = True
                run.errors.append(f"whole-run timeout ({spec.run_timeout:g} s) reached")
                child.kill()
                return True
            current = seen.current
            idle_limit = spec.per_test_timeout * (1 if current else 2)
            quiet_since = seen.current_since if current else seen.last_seen
            if now - quiet_since > idle_limit:
                _record_hang(child, run, current, idle_limit, on_event)
                run.watchdog_seconds += time.monotonic() - quiet_since
                return current is None  # resume only past a test we can blame
            time.sleep(_POLL_SECONDS)
        code = child.process.returncode
        run.exit_codes.append(code)
        if seen.finished_session:
            if code in _BROKEN_EXIT_CODES:
                run.incomplete = True
                run.errors.append(
                    f"pytest {_BROKEN_EXIT_CODES[code]} (exit {code}):\n{child.log_tail()}"
                )
            return True
        return not _record_crash(child, run, seen.current, code, on_event)
    except KeyboardInterrupt:
        # Ctrl-C may land before this turn read what the child already wrote:
        # stop the child, then keep every outcome it reported.
        child.kill()
        seen.take(child.read_events())
        raise
    finally:
        child.close()


def _record_hang(
    child: _Child,
    run: ModeRun,
    current: str | None,
    limit: float,
    on_event: EventCallback | None,
) -> None:
    stacks = child.dump_stacks()
    child.kill()
    run.exit_codes.append(child.process.returncode)
    if current is None:
        run.incomplete = True
        run.errors.append(f"no report for {limit:g} s outside any test; stacks:\n{stacks}")
        return
    run.records[current] = TestRecord(
        nodeid=current,
        outcome="hung",
        detail=f"no report for {limit:g} s: killed by the watchdog",
        stacks=stacks or None,
    )
    if on_event is not None:
        on_event("result", {"nodeid": current, "outcome": "hung"})


def _record_crash(
    child: _Child,
    run: ModeRun,
    current: str | None,
    code: int,
    on_event: EventCallback | None,
) -> bool:
    """Record a process that ended without finishing the session; True to resume."""
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
    tail = child.log_tail()
    if current is None:
        # Before the first test or after the last: nothing to blame, nothing to
        # resume past.  The run did not complete (usage error, import error, ...).
        run.errors.append(f"pytest {how} outside any test:\n{tail}")
        run.incomplete = True
        return False
    run.records[current] = TestRecord(
        nodeid=current, outcome="crashed", detail=f"process {how}\n{tail}"
    )
    if on_event is not None:
        on_event("result", {"nodeid": current, "outcome": "crashed"})
    return True
