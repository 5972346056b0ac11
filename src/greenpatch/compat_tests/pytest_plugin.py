"""The harness's eyes inside a suite's pytest process (loaded with ``-p``).

It does five things, all driven by the JSON file named in ``GREENPATCH_COMPAT_CONFIG``
(written by ``runner.py``; without it the plugin does nothing):

1. Streams one JSON line per event to ``events`` -- ``collected``, ``start`` when a
   test begins, ``result`` when it ends -- flushed at once, so that a crash or a
   hang loses nothing already seen and the outside watchdog knows which test was
   running when the process stopped reporting.
2. Deselects tests: the manifest's entries (by node-id prefix or marker, reported
   with their reason) and, when the watchdog resumes a run, what already ran.
3. Installs the network guard (``netguard.py``) unless the network is allowed.
4. Arms stack dumps for the watchdog: SIGUSR1 makes faulthandler write every
   thread's stack (works even when the main thread is stuck in C), SIGUSR2 writes
   thread *and greenlet* stacks from Python (works when the interpreter still
   gets a turn).  Both go to ``stacks``.
5. In the patched run, starts the loop-stall monitor (``stall.py``) and tells it
   which test is running.

It imports nothing heavy: it runs in the suite's environment, plain and patched.
"""

from __future__ import annotations

import faulthandler
import gc
import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import IO, Any

import pytest

from greenpatch.compat_tests._protocol import CONFIG_ENV, STACKS_DONE_MARKER

_EXCERPT_CHARS = 3000


def _excerpt(text: str) -> str:
    # The end of a pytest failure (the exception and the line that raised) says most.
    return text if len(text) <= _EXCERPT_CHARS else "...\n" + text[-_EXCERPT_CHARS:]


def _matches(nodeid: str, prefix: str) -> bool:
    if not nodeid.startswith(prefix):
        return False
    rest = nodeid[len(prefix) :]
    return rest == "" or rest[0] in ":[/" or prefix.endswith(("/", "::"))


class CompatPlugin:
    def __init__(self, config: dict[str, Any]) -> None:
        self.mode: str = config.get("mode", "plain")
        self.events: IO[str] = open(config["events"], "a", encoding="utf-8")
        self.skip: set[str] = set(config.get("skip", []))
        only = config.get("only")
        self.only: set[str] | None = set(only) if only is not None else None
        self.deselect: list[dict[str, str]] = config.get("deselect", [])
        self.lock = threading.Lock()
        self.reports: dict[str, list[Any]] = {}
        self.blocked: dict[str, list[str]] = {}
        self.current: str | None = None
        self.monitor: Any = None
        self.stacks: IO[str] | None = None
        if config.get("stacks"):
            self.stacks = open(config["stacks"], "a", encoding="utf-8")
            self._arm_stack_dumps()
        if not config.get("allow_network", False):
            from greenpatch.compat_tests import netguard

            netguard.install(on_block=self._on_block)

    # -- the event stream ---------------------------------------------------
    def emit(self, **event: Any) -> None:
        event["time"] = time.time()
        line = json.dumps(event, default=str) + "\n"
        with self.lock:
            self.events.write(line)
            self.events.flush()

    def _on_block(self, what: str) -> None:
        nodeid = self.current or "<no test>"
        with self.lock:
            self.blocked.setdefault(nodeid, []).append(what)

    # -- stacks for the watchdog --------------------------------------------
    def _arm_stack_dumps(self) -> None:
        assert self.stacks is not None
        faulthandler.register(signal.SIGUSR1, file=self.stacks, all_threads=True, chain=False)
        set_handler: Any = signal.signal
        try:
            from greenpatch.patcher import is_patched, original

            if is_patched("signal"):
                # The green signal module delivers through the hub, which is
                # exactly what may be frozen when we need the dump.
                set_handler = original("signal", "signal")
        except Exception:
            pass
        set_handler(signal.SIGUSR2, self._dump_python_stacks)

    def _dump_python_stacks(self, signum: int, frame: Any) -> None:
        out = self.stacks
        if out is None:
            return
        lines = [f"\n=== greenpatch: stacks of pid {os.getpid()} during {self.current} ==="]
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        for ident, thread_frame in sys._current_frames().items():
            lines.append(f"--- thread {names.get(ident, ident)} ---")
            lines.extend(line.rstrip() for line in traceback.format_stack(thread_frame))
        lines.extend(_greenlet_stacks())
        lines.append(STACKS_DONE_MARKER)
        out.write("\n".join(lines) + "\n")
        out.flush()

    # -- pytest hooks -------------------------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.emit(event="session_start", mode=self.mode, pid=os.getpid())
        if self.mode == "patched":
            self.monitor = _start_stall_monitor()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        keep: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        by_manifest: list[dict[str, str]] = []
        for item in items:
            reason = self._deselect_reason(item)
            if reason is not None:
                by_manifest.append({"nodeid": item.nodeid, "reason": reason})
                dropped.append(item)
            elif item.nodeid in self.skip or (
                self.only is not None and item.nodeid not in self.only
            ):
                dropped.append(item)
            else:
                keep.append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep
        self.emit(event="collected", count=len(keep), deselected=by_manifest)

    def _deselect_reason(self, item: pytest.Item) -> str | None:
        for entry in self.deselect:
            marker = entry.get("marker")
            if marker and item.get_closest_marker(marker) is not None:
                return entry["reason"]
            prefix = entry.get("id")
            if prefix and _matches(item.nodeid, prefix):
                return entry["reason"]
        return None

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.emit(
                event="collect_error",
                nodeid=report.nodeid,
                longrepr=_excerpt(str(report.longrepr)),
            )

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        self.current = nodeid
        if self.monitor is not None:
            self.monitor.current_test = nodeid
        self.emit(event="start", nodeid=nodeid)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.reports.setdefault(report.nodeid, []).append(report)

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        reports = self.reports.pop(nodeid, [])
        outcome, detail = _outcome(reports)
        with self.lock:
            blocked = self.blocked.pop(nodeid, [])
        self.emit(
            event="result",
            nodeid=nodeid,
            outcome=outcome,
            duration=sum(getattr(report, "duration", 0.0) for report in reports),
            detail=detail,
            network=blocked,
        )
        self.current = None
        if self.monitor is not None:
            self.monitor.current_test = None

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.monitor is not None:
            try:
                self.monitor.stop()
            except Exception as exc:
                self.emit(event="warning", message=f"stall monitor stop failed: {exc!r}")
        self.emit(event="session_finish", exitstatus=int(exitstatus))


def _outcome(reports: list[Any]) -> tuple[str, str | None]:
    """One outcome for a test from its setup/call/teardown reports."""
    for report in reports:
        if report.failed:
            kind = "failed" if report.when == "call" else "error"
            return kind, _excerpt(f"[{report.when}] {report.longreprtext}")
    for report in reports:
        if report.skipped:
            if hasattr(report, "wasxfail"):
                return "skipped", f"xfail: {report.wasxfail}"
            longrepr = report.longrepr
            if isinstance(longrepr, tuple) and len(longrepr) == 3:
                return "skipped", str(longrepr[2])
            return "skipped", _excerpt(str(longrepr))
    return "passed", None


def _greenlet_stacks() -> list[str]:
    """The stacks of every suspended greenlet (threads' are dumped separately)."""
    try:
        import greenlet
    except ImportError:
        return []
    lines = []
    for obj in gc.get_objects():
        if isinstance(obj, greenlet.greenlet) and obj.gr_frame is not None:
            lines.append(f"--- greenlet {obj!r} ---")
            lines.extend(line.rstrip() for line in traceback.format_stack(obj.gr_frame))
    return lines


def _start_stall_monitor() -> Any:
    """The loop-stall monitor, if stall.py is there and the harness asked for one."""
    try:
        from greenpatch.compat_tests import stall
    except ImportError:
        return None
    try:
        return stall.start_from_env()
    except Exception as exc:
        sys.stderr.write(f"greenpatch compat: stall monitor did not start: {exc!r}\n")
        return None


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get(CONFIG_ENV)
    if not path or config.pluginmanager.has_plugin("greenpatch-compat"):
        return
    with open(path, encoding="utf-8") as stream:
        settings = json.load(stream)
    config.pluginmanager.register(CompatPlugin(settings), "greenpatch-compat")
