"""The loop-stall monitor: blocking calls are caught with their stack, cooperative waits are not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import greenpatch
from greenpatch.compat_tests._stall_records import UNSCHEDULED_FRAME
from greenpatch.compat_tests.stall import (
    STALL_FILE_ENV,
    STALL_SOURCE_ROOT_ENV,
    STALL_THRESHOLD_ENV,
    JsonLinesSink,
    LoopStallMonitor,
    SourceMap,
    StallFileError,
    _StallTracker,
    aggregate,
    classify,
    read_records,
    start_from_env,
    threshold_from_env,
)

HEADER = """\
import time
import greenpatch
from greenpatch.compat_tests.stall import start_from_env

blocking_sleep = greenpatch.original("time", "sleep")
monitor = start_from_env()
assert monitor is not None
"""


def run_patched(
    tmp_path: Path, body: str, extra_env: dict[str, str] | None = None
) -> tuple[Path, list[dict[str, Any]]]:
    """Run HEADER + body + stop() under `greenpatch run`; return the script and its records."""
    script = tmp_path / "scenario.py"
    script.write_text(HEADER + textwrap.dedent(body) + "\nmonitor.stop()\n")
    stall_file = tmp_path / "stalls.jsonl"
    env = dict(os.environ, **{STALL_FILE_ENV: str(stall_file), STALL_THRESHOLD_ENV: "0.1"})
    env.update(extra_env or {})
    out = subprocess.run(
        [sys.executable, "-m", "greenpatch", "run", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "monitor failed" not in out.stderr
    return script, read_records(stall_file)


def line_of(script: Path, marker: str) -> int:
    for number, line in enumerate(script.read_text().splitlines(), 1):
        if marker in line:
            return number
    raise AssertionError(f"{marker!r} not in {script}")


# -- in a patched run ------------------------------------------------------------------
def test_blocking_call_is_a_hot_spot_naming_the_line_that_called_it(tmp_path):
    script, records = run_patched(
        tmp_path,
        """
        monitor.current_test = "test_app.py::test_blocks"
        blocking_sleep(0.3)  # BLOCKS
        """,
    )
    assert len(records) == 1
    (spot,) = aggregate(records)
    assert spot["frame"] == f"{script}:{line_of(script, '# BLOCKS')} in <module>"
    assert spot["count"] == 1
    assert 0.25 <= spot["worst"] < 1.0
    assert spot["tests"] == ["test_app.py::test_blocks"]
    innermost = spot["stack"][-1]
    assert innermost["file"] == str(script)
    assert innermost["code"] == "blocking_sleep(0.3)  # BLOCKS"
    record = records[0]
    assert record["test"] == "test_app.py::test_blocks"
    assert record["greenlet"] is None  # the main greenlet, not a task
    assert abs(record["when"] - time.time()) < 60


def test_a_blocking_system_call_and_a_busy_loop_are_told_apart(tmp_path):
    _, records = run_patched(
        tmp_path,
        """
        monitor.current_test = "t::sleeps"
        blocking_sleep(0.4)  # in a system call: the thread is off the CPU
        time.sleep(0.05)
        monitor.current_test = "t::computes"
        end = time.thread_time() + 0.4  # CPU time: a loaded machine cannot shorten it
        while time.thread_time() < end:
            pass
        """,
    )
    sleeps, computes = records
    assert (sleeps["test"], sleeps["kind"]) == ("t::sleeps", "blocked")
    assert sleeps["cpu"] < sleeps["duration"] / 2
    assert computes["test"] == "t::computes"
    assert computes["cpu"] >= 0.3
    # On a loaded machine the loop also waits for a CPU: it may then be called
    # "unscheduled" (the larger share), but never a system call.
    assert computes["kind"] != "blocked"
    assert computes["kind"] == classify(computes["duration"], computes["cpu"], computes["waiting"])


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or not os.path.exists("/proc/self/schedstat"),
    reason="needs Linux's CPU affinity and scheduler statistics",
)
def test_a_stall_while_the_process_was_not_given_a_cpu_is_not_blamed_on_its_frame(tmp_path):
    # The hub's thread (nice 19) shares one CPU with two busy processes (nice 0):
    # the scheduler gives it about 1% of that CPU, so a busy loop of 0.5 s of
    # *wall* time spends nearly all of it runnable but not running.  Only that
    # thread: the monitor thread must get its turns to see the stall at all.
    cpu = sorted(os.sched_getaffinity(0))[0]
    hog = (
        f"import os; os.sched_setaffinity(0, {{{cpu}}}); print('on', flush=True)\nwhile True: pass"
    )
    hogs = [
        subprocess.Popen([sys.executable, "-c", hog], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        for process in hogs:
            assert process.stdout is not None and process.stdout.readline() == "on\n"
        _, records = run_patched(
            tmp_path,
            f"""
            import os, threading
            hub_thread = threading.get_native_id()
            os.sched_setaffinity(hub_thread, {{{cpu}}})
            os.setpriority(os.PRIO_PROCESS, hub_thread, 19)
            monitor.current_test = "t::starved"
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                # Hands the GIL over now and then: a thread that is preempted
                # while holding it keeps the monitor from sampling at all.
                blocking_sleep(0)
            """,
        )
    finally:
        for process in hogs:
            process.kill()
            process.wait()
    starved = [record for record in records if record["test"] == "t::starved"]
    assert starved, records
    assert {record["kind"] for record in starved} == {"unscheduled"}, starved
    assert all(record["waiting"] > record["cpu"] for record in starved)
    assert [spot["frame"] for spot in aggregate(starved)] == [UNSCHEDULED_FRAME]


def test_cooperative_sleep_produces_no_record(tmp_path):
    _, records = run_patched(
        tmp_path,
        """
        assert greenpatch.is_patched("time")
        time.sleep(0.3)
        """,
    )
    assert records == []


def test_many_greenlets_sleeping_cooperatively_produce_no_record(tmp_path):
    _, records = run_patched(
        tmp_path,
        """
        jobs = [greenpatch.spawn(time.sleep, 0.3) for _ in range(50)]
        greenpatch.joinall(jobs)
        time.sleep(0.2)
        """,
    )
    assert records == []


def test_two_blocking_calls_at_one_site_count_twice_and_name_their_greenlet(tmp_path):
    script, records = run_patched(
        tmp_path,
        """
        def fetch():
            blocking_sleep(0.2)  # BLOCKS

        for _ in range(2):
            task = greenpatch.Greenlet(fetch)
            task.name = "slowpoke"
            task.start()
            task.join()
            time.sleep(0.05)  # the hub runs in between: two episodes, not one
        """,
    )
    assert [record["greenlet"] for record in records] == ["slowpoke", "slowpoke"]
    (spot,) = aggregate(records)
    assert spot["frame"] == f"{script}:{line_of(script, '# BLOCKS')} in fetch"
    assert spot["count"] == 2
    assert spot["total"] >= 0.3


def test_a_stall_spanning_two_tests_is_recorded_once_for_each(tmp_path):
    _, records = run_patched(
        tmp_path,
        """
        monitor.current_test = "t::first"
        blocking_sleep(0.3)
        monitor.current_test = "t::second"
        blocking_sleep(0.3)
        """,
    )
    assert [record["test"] for record in records] == ["t::first", "t::second"]
    assert all(record["duration"] >= 0.2 for record in records)


def test_monitor_stays_an_os_thread_when_thread_start_is_green(tmp_path):
    # A stand-in for a green _thread: start_new_thread runs the function as a
    # greenlet.  A monitor started that way would run on the hub it watches and
    # could never see it blocked.
    (tmp_path / "fake_green_thread.py").write_text(
        textwrap.dedent(
            """
            import greenpatch
            __target__ = "_thread"
            __implements__ = ["start_new_thread"]
            def start_new_thread(function, args, kwargs={}):
                return greenpatch.spawn(function, *args, **kwargs)
            """
        )
    )
    script = tmp_path / "scenario.py"
    script.write_text(
        textwrap.dedent(
            """
            import _thread, sys
            import greenpatch
            from greenpatch.patcher import api
            from greenpatch.patcher.registry import PatchSpec
            from greenpatch.compat_tests.stall import LoopStallMonitor

            api.registry.register(
                PatchSpec(name="fake_thread", target="_thread", green="fake_green_thread",
                          flag="fake_thread")
            )
            api.patch("fake_thread")
            assert _thread.start_new_thread.__module__ == "fake_green_thread"
            monitor = LoopStallMonitor(threshold=0.1).start()
            assert isinstance(monitor.ident, int) and monitor.ident in sys._current_frames()
            greenpatch.original("time", "sleep")(0.3)
            monitor.stop()
            print(len(monitor.records))
            """
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "greenpatch", "run", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


# -- in this process ---------------------------------------------------------------------
def test_monitor_thread_is_a_real_os_thread_and_stops_cleanly():
    monitor = LoopStallMonitor(threshold=0.05)
    with monitor:
        assert monitor.running
        assert monitor.ident is not None and monitor.ident != threading.get_ident()
        assert monitor.ident in sys._current_frames()
    assert not monitor.running
    monitor.stop()  # a second stop is a no-op
    deadline = time.monotonic() + 10
    while monitor.ident in sys._current_frames():
        assert time.monotonic() < deadline, "the monitor thread outlived stop()"
        time.sleep(0.01)


def test_sink_receives_each_record_and_its_failure_does_not_stop_the_monitor(tmp_path, capfd):
    def broken_sink(record: dict[str, Any]) -> None:
        raise OSError("disk full")

    file_sink = JsonLinesSink(str(tmp_path / "out.jsonl"))
    monitor = LoopStallMonitor(threshold=0.05, sink=broken_sink).start()
    time.sleep(0.2)  # this process is not patched: the hub cannot run meanwhile
    deadline = time.monotonic() + 10
    while not monitor.records:  # the hub runs: the first stall ends, the sink fails
        assert time.monotonic() < deadline
        greenpatch.sleep(0.01)
    monitor.sink = file_sink
    time.sleep(0.2)  # a second stall, still going on at stop()
    monitor.stop()
    assert len(monitor.records) == 2
    assert "could not store a stall record: OSError('disk full')" in capfd.readouterr().err
    assert read_records(file_sink.path) == json.loads(json.dumps(monitor.records[1:]))
    assert all(record["duration"] >= 0.15 for record in monitor.records)
    assert monitor.records[0]["frame"].startswith(f"{__file__}:")


def test_start_from_env_without_a_file_starts_nothing():
    assert start_from_env({}) is None


def test_start_from_env_creates_the_file_and_reads_the_threshold(tmp_path):
    path = tmp_path / "sub" / "stalls.jsonl"
    monitor = start_from_env({STALL_FILE_ENV: str(path), STALL_THRESHOLD_ENV: "2.5"})
    assert monitor is not None
    try:
        assert path.exists() and read_records(path) == []
        assert monitor.threshold == 2.5
    finally:
        monitor.stop()


@pytest.mark.parametrize("value", ["soon", "0", "-1"])
def test_malformed_threshold_is_a_clear_error(value):
    with pytest.raises(ValueError, match=STALL_THRESHOLD_ENV):
        threshold_from_env({STALL_THRESHOLD_ENV: value})


# -- episodes, with controlled time ---------------------------------------------------------
def feed(tracker: _StallTracker, samples: list[tuple[float, int, bool, str | None]]) -> list[Any]:
    finished = []
    for now, iterations, polling, test in samples:
        episode = tracker.observe(now, iterations, polling, test, wall=1000.0 + now)
        if episode is not None:
            finished.append(episode)
    return finished


def test_one_episode_per_stall_however_many_samples_see_it():
    tracker = _StallTracker(0.1, now=0.0, iterations=0, test=None)
    stalled = [(i / 100, 0, False, None) for i in range(1, 51)]
    finished = feed(tracker, [*stalled, (0.51, 1, False, None)])
    assert len(finished) == 1
    assert (finished[0].start, finished[0].end, finished[0].when) == (0.0, 0.51, 1000.0)


def test_polling_is_not_a_stall_and_short_pauses_are_not_either():
    tracker = _StallTracker(0.1, now=0.0, iterations=0, test=None)
    polling = [(i / 100, 0, True, None) for i in range(1, 100)]
    short = [(1.0 + i / 100, 0, False, None) for i in range(9)]
    assert feed(tracker, [*polling, *short, (1.1, 1, False, None)]) == []
    assert tracker.current is None


# -- reading and aggregating ------------------------------------------------------------------
def record(frame: str, duration: float, test: str | None) -> dict[str, Any]:
    stack = [{"file": frame, "line": 1, "function": "f", "code": f"# {duration}"}]
    return {"test": test, "duration": duration, "stack": stack, "frame": frame, "when": 0.0}


def test_aggregate_groups_by_call_site_and_puts_the_worst_first():
    records = [
        record("a.py:1 in f", 0.2, "t1"),
        record("b.py:2 in g", 0.9, "t2"),
        record("a.py:1 in f", 0.5, "t0"),
        record("a.py:1 in f", 0.3, None),
    ]
    spots = aggregate(records)
    assert [spot["frame"] for spot in spots] == ["b.py:2 in g", "a.py:1 in f"]
    a = spots[1]
    assert (a["count"], a["worst"], a["total"], a["tests"]) == (3, 0.5, 1.0, ["t0", "t1"])
    assert a["stack"] == records[2]["stack"]


def test_read_records_skips_a_truncated_last_line(tmp_path):
    path = tmp_path / "stalls.jsonl"
    good = record("a.py:1 in f", 0.2, "t")
    path.write_text(json.dumps(good) + "\n" + json.dumps(good)[:25])
    assert read_records(path) == [good]


def test_read_records_names_the_file_and_line_of_a_corrupt_record(tmp_path):
    path = tmp_path / "stalls.jsonl"
    good = json.dumps(record("a.py:1 in f", 0.2, "t"))
    path.write_text(f"{good}\n\n{{nonsense\n{good}\n")
    with pytest.raises(StallFileError, match=r"stalls\.jsonl:3: not a JSON stall record"):
        read_records(path)


def test_read_records_rejects_a_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "stalls.jsonl"
    path.write_text("[1, 2]\n{}\n")
    with pytest.raises(StallFileError, match=r"stalls\.jsonl:1: expected a JSON object"):
        read_records(path)


# -- what kind of stall ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("wall", "cpu", "waiting", "kind"),
    [
        (1.0, 0.95, 0.0, "cpu"),
        (1.0, 0.45, 0.4, "cpu"),  # a busy loop on a loaded machine is still a busy loop
        (1.0, 0.01, 0.0, "blocked"),
        (1.0, 0.2, 0.7, "unscheduled"),
        (1.0, None, None, "unknown"),
    ],
)
def test_classify_names_where_most_of_the_stall_went(wall, cpu, waiting, kind):
    assert classify(wall, cpu, waiting) == kind


def test_tracker_hands_the_episode_the_usage_at_its_start_and_its_end():
    tracker = _StallTracker(0.1, now=0.0, iterations=0, test=None)
    tracker.observe(0.05, 1, False, None, wall=0.0, usage=(1.0, 2.0))  # progress
    assert tracker.observe(0.2, 1, False, None, wall=0.0, usage=(1.1, 2.0)) is None
    episode = tracker.observe(0.3, 2, False, None, wall=0.0, usage=(1.2, 2.05))
    assert episode is not None
    assert (episode.usage_start, episode.usage_end) == ((1.0, 2.0), (1.2, 2.05))


def test_aggregate_keeps_unscheduled_stalls_in_a_spot_of_their_own_listed_last():
    records = [
        {**record("lib.py:3 in get", 2.0, "t1"), "kind": "unscheduled"},
        {**record("lib.py:3 in get", 0.2, "t2"), "kind": "blocked"},
        {**record("lib.py:3 in get", 0.4, "t3"), "kind": "blocked"},
        {**record("lib.py:9 in put", 0.3, "t4"), "kind": "cpu"},
        {**record("lib.py:9 in put", 0.25, "t5"), "kind": "blocked"},
    ]
    spots = aggregate(records)
    assert [(spot["frame"], spot["kind"]) for spot in spots] == [
        ("lib.py:3 in get", "blocked"),
        ("lib.py:9 in put", "cpu"),
        (UNSCHEDULED_FRAME, "unscheduled"),
    ]
    assert spots[1]["kinds"] == {"cpu": 1, "blocked": 1}
    assert spots[2]["tests"] == ["t1"]


# -- where a path library's frames point ------------------------------------------------
LIBRARY = """\
import greenpatch


def wait():
    greenpatch.original("time", "sleep")(0.3)  # BLOCKS IN THE LIBRARY
"""


def test_an_installed_copy_of_the_users_tree_is_reported_at_its_place_in_the_tree(tmp_path):
    tree = tmp_path / "checkout"
    (tree / "src" / "mylib").mkdir(parents=True)
    (tree / "src" / "mylib" / "__init__.py").write_text(LIBRARY)
    installed = tmp_path / "env" / "lib" / "site-packages"
    (installed / "mylib").mkdir(parents=True)
    (installed / "mylib" / "__init__.py").write_text(LIBRARY)  # as pip install copies it
    _, records = run_patched(
        tmp_path,
        """
        import os
        import mylib
        assert mylib.__file__.startswith(os.environ["INSTALLED"]), mylib.__file__
        mylib.wait()
        """,
        {
            "PYTHONPATH": os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")]),
            "INSTALLED": str(installed),
            STALL_SOURCE_ROOT_ENV: str(tree),
        },
    )
    (record,) = records
    source = tree / "src" / "mylib" / "__init__.py"
    assert record["frame"] == f"{source}:5 in wait"
    assert record["stack"][-1]["file"] == str(source)
    assert record["stack"][-1]["code"].endswith("# BLOCKS IN THE LIBRARY")


def test_source_map_keeps_a_file_the_tree_no_longer_matches(tmp_path):
    tree, installed = tmp_path / "tree", tmp_path / "site-packages"
    tree.mkdir()
    installed.mkdir()
    (tree / "same.py").write_text("x = 1\n")
    (installed / "same.py").write_text("x = 1\n")
    (tree / "edited.py").write_text("x = 2  # edited after the install\n")
    (installed / "edited.py").write_text("x = 1\n")
    (installed / "only_installed.py").write_text("")
    elsewhere = tmp_path / "elsewhere.py"
    elsewhere.write_text("x = 1\n")
    source_map = SourceMap([str(tree)], [str(installed)])
    assert source_map(str(installed / "same.py")) == str(tree / "same.py")
    assert source_map(str(installed / "edited.py")) == str(installed / "edited.py")
    assert source_map(str(installed / "only_installed.py")) == str(installed / "only_installed.py")
    assert source_map(str(elsewhere)) == str(elsewhere)
