"""Locals are per task, although tasks run on reused worker greenlets.

``greenlet.getcurrent()`` inside a task is the worker (docs/hub.md); a local
keyed by it would hand one task's data to the next task that worker runs.
``greenpatch.local.local`` and the patched ``threading.local`` are keyed by task.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import greenlet

import greenpatch
from greenpatch.local import local


def _two_tasks_on_one_worker(store: object) -> tuple[bool, object]:
    """Run a writer task, then a reader task; report whether one worker ran both."""

    def write() -> object:
        store.value = "writer's"  # type: ignore[attr-defined]
        return greenlet.getcurrent()

    def read() -> tuple[object, object]:
        return greenlet.getcurrent(), getattr(store, "value", "unset")

    writer_worker = greenpatch.spawn(write).get()
    reader_worker, seen = greenpatch.spawn(read).get()
    return writer_worker is reader_worker, seen


def test_greenpatch_local_is_per_task_on_a_reused_worker():
    same_worker, seen = _two_tasks_on_one_worker(local())
    assert same_worker  # the situation this test is about
    assert seen == "unset"


def test_greenpatch_local_subclass_init_runs_per_task():
    class WithDefault(local):
        def __init__(self) -> None:
            self.value = "default"

    store = WithDefault()
    same_worker, seen = _two_tasks_on_one_worker(store)
    assert same_worker and seen == "default"


def test_patched_threading_local_is_per_task_on_a_reused_worker():
    script = textwrap.dedent(
        """
        import greenpatch
        greenpatch.patch_all()
        import threading
        import greenlet

        store = threading.local()

        def write():
            store.value = "writer's"
            return greenlet.getcurrent()

        def read():
            return greenlet.getcurrent(), getattr(store, "value", "unset")

        writer = greenpatch.spawn(write).get()
        reader, seen = greenpatch.spawn(read).get()
        print(writer is reader, seen, threading.local is greenpatch.local.local)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "unset", "True"]
