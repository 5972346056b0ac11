"""Frame stacks of new greenlets from slabs (``gp_stack_chunks_install`` in the C glue).

On CPython 3.11+ every greenlet gets a 16 KiB data-stack chunk; once a hub
exists, chunks of that size come from 1 MiB slabs of 64.  These tests check
what a user could notice: frames in many greenlets stay intact however their
chunks are handed out and taken back (deep recursion, interleaved switches,
threads, a forked child), and the memory of a burst of greenlets goes back
when the burst ends.
"""

from __future__ import annotations

import os
import sys
import threading

import pytest
from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet

from greenpatch import get_hub
from greenpatch.hub._libev import ffi, lib

pytestmark = pytest.mark.skipif(
    sys.implementation.name != "cpython" or sys.version_info < (3, 11),
    reason="greenlets have data stacks of their own on CPython 3.11+ only",
)

#: Empty slabs kept mapped for the next burst (GP_SPARE_SLABS in the C glue).
SPARE_SLABS = 2


def _stats() -> tuple[int, int]:
    slabs = ffi.new("long[]", 1)
    chunks = ffi.new("long[]", 1)
    lib.gp_stack_chunks_stats(slabs, chunks)
    return int(slabs[0]), int(chunks[0])


@pytest.fixture(autouse=True)
def _installed() -> None:
    get_hub()  # the first hub installs the slabs


def _parked(count: int) -> list[RawGreenlet]:
    """``count`` greenlets, each started and switched out inside a frame of its own."""
    main = getcurrent()

    def run(index: int) -> int:
        marker = [index] * 3
        main.switch()
        return marker[0] + marker[2]

    glets = [RawGreenlet(run) for _ in range(count)]
    for index, glet in enumerate(glets):
        glet.switch(index)
    return glets


def test_each_live_greenlet_holds_a_chunk_and_a_burst_gives_its_slabs_back() -> None:
    slabs_before, chunks_before = _stats()
    glets = _parked(3000)
    slabs, chunks = _stats()
    assert chunks >= chunks_before + 3000
    assert slabs >= 3000 // 64
    # Finishing returns each greenlet's value from its own frame.
    assert [glet.switch() for glet in glets] == [2 * index for index in range(3000)]
    assert all(glet.dead for glet in glets)
    slabs_after, chunks_after = _stats()
    assert chunks_after == chunks_before
    assert slabs_after <= slabs_before + SPARE_SLABS, "the burst's empty slabs stayed mapped"


def _depth(levels: int, switch_every: int, main: RawGreenlet) -> int:
    if levels == 0:
        return 0
    if levels % switch_every == 0:
        main.switch()
    return 1 + _depth(levels - 1, switch_every, main)


def test_deep_recursion_in_interleaved_greenlets_keeps_every_frame() -> None:
    # Each greenlet's recursion spans many chunks, taken and given back while
    # the others hold theirs half-way down.
    main = getcurrent()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 5000))
    try:
        glets = [RawGreenlet(_depth) for _ in range(20)]
        results = {}
        for index, glet in enumerate(glets):
            glet.switch(3000 + index, 97 + index, main)
        while not all(glet.dead for glet in glets):
            for index, glet in enumerate(glets):
                if not glet.dead:
                    value = glet.switch()
                    if glet.dead:
                        results[index] = value
    finally:
        sys.setrecursionlimit(limit)
    assert results == {index: 3000 + index for index in range(20)}


def test_greenlets_in_several_threads_at_once() -> None:
    errors: list[BaseException] = []

    def burst() -> None:
        try:
            for _ in range(5):
                glets = _parked(300)
                assert [glet.switch() for glet in glets] == [2 * i for i in range(300)]
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=burst) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_runs_greenlets_on_the_inherited_slabs() -> None:
    held = _parked(100)  # chunks in use across the fork
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        try:
            ok = [glet.switch() for glet in held] == [2 * i for i in range(100)]
            glets = _parked(500)
            ok = ok and [glet.switch() for glet in glets] == [2 * i for i in range(500)]
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [glet.switch() for glet in held] == [2 * i for i in range(100)]
