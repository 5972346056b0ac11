"""Queues: stdlib semantics, timeouts, FIFO fairness, no lost items, joining, Channel."""

from __future__ import annotations

import queue as stdlib_queue
import time

import pytest

from greenpatch import GreenletExit, LoopExit, Timeout, get_hub, sleep, spawn
from greenpatch.hub.queue import (
    Channel,
    Empty,
    Full,
    JoinableQueue,
    LifoQueue,
    PriorityQueue,
    Queue,
    SimpleQueue,
)

PAIRS = [
    (Queue, stdlib_queue.Queue),
    (LifoQueue, stdlib_queue.LifoQueue),
    (PriorityQueue, stdlib_queue.PriorityQueue),
    (JoinableQueue, stdlib_queue.Queue),
    (SimpleQueue, stdlib_queue.SimpleQueue),
]
BOUNDED = [Queue, LifoQueue, PriorityQueue, JoinableQueue]


def run_until(condition, limit=10_000):
    """Let other greenlets run (sleep(0) is a deterministic turn) until condition()."""
    for _ in range(limit):
        if condition():
            return
        sleep(0)
    raise AssertionError("condition never became true")


# -- the standard library's semantics ------------------------------------------------
def test_the_exceptions_are_the_standard_librarys():
    assert Empty is stdlib_queue.Empty
    assert Full is stdlib_queue.Full


@pytest.mark.parametrize(("ours", "theirs"), PAIRS, ids=lambda c: c.__name__)
def test_order_and_sizes_match_the_standard_library(ours, theirs):
    items = [5, 1, 4, 1, 5, 9, 2, 6]
    mine, reference = ours(), theirs()
    for item in items:
        mine.put(item)
        reference.put(item)
        assert mine.qsize() == reference.qsize()
    assert mine.empty() is reference.empty() is False
    got = [mine.get() for _ in items]
    assert got == [reference.get() for _ in items]
    assert mine.empty() and mine.qsize() == 0
    with pytest.raises(Empty):
        mine.get_nowait()
    with pytest.raises(Empty) as raised:
        mine.get(block=False)
    # Not "during handling of IndexError": how get() finds the queue empty is its own.
    assert raised.value.__context__ is None


@pytest.mark.parametrize("cls", BOUNDED, ids=lambda c: c.__name__)
def test_a_bounded_queue_is_full_at_maxsize_and_raises_full(cls):
    q = cls(2)
    assert q.maxsize == 2
    q.put_nowait(1)
    assert not q.full()
    q.put(2, block=False)
    assert q.full() and q.qsize() == 2
    with pytest.raises(Full):
        q.put_nowait(3)
    with pytest.raises(Full):
        q.put(3, timeout=0)
    assert q.get_nowait() in (1, 2)
    assert not q.full()


@pytest.mark.parametrize("maxsize", [None, 0, -1])
def test_maxsize_none_zero_or_negative_means_unbounded(maxsize):
    q = Queue(maxsize)
    assert q.maxsize == 0
    for i in range(1000):
        q.put_nowait(i)
    assert not q.full() and len(q) == 1000


def test_an_empty_queue_is_still_true():
    assert Queue()
    assert len(Queue()) == 0


def test_simple_queue_takes_no_maxsize():
    with pytest.raises(TypeError):
        SimpleQueue(3)  # type: ignore[call-arg]


def test_negative_timeout_is_a_value_error_like_the_standard_library():
    with pytest.raises(ValueError):
        Queue().get(timeout=-1)
    q = Queue(1)
    q.put(1)
    with pytest.raises(ValueError):
        q.put(2, timeout=-1)


def test_iteration_stops_at_the_stopiteration_item():
    q = Queue()
    for item in (1, 2, StopIteration, 3):
        q.put(item)
    assert list(q) == [1, 2]
    assert q.get_nowait() == 3


# -- blocking and timeouts ------------------------------------------------------------
def test_blocked_get_is_woken_by_a_put_from_another_greenlet():
    q = Queue()
    getter = spawn(q.get)
    run_until(lambda: q.getters == 1)
    q.put("hello")
    assert getter.get(timeout=10) == "hello"


def test_blocked_put_is_woken_when_a_get_frees_a_slot():
    q = Queue(1)
    q.put("first")
    putter = spawn(q.put, "second")
    run_until(lambda: q.putters == 1)
    assert q.get() == "first"
    putter.get(timeout=10)
    assert q.get_nowait() == "second"


@pytest.mark.parametrize("cls", [Queue, LifoQueue, PriorityQueue, JoinableQueue, SimpleQueue])
def test_get_times_out_with_empty(cls):
    q = cls()
    started = time.monotonic()
    with pytest.raises(Empty):
        q.get(timeout=0.05)
    assert time.monotonic() - started >= 0.04
    assert q.getters == 0


@pytest.mark.parametrize("cls", BOUNDED, ids=lambda c: c.__name__)
def test_put_on_a_full_queue_times_out_with_full(cls):
    q = cls(1)
    q.put(1)
    with pytest.raises(Full):
        q.put(2, timeout=0.05)
    assert q.putters == 0 and q.qsize() == 1


def test_a_timeout_around_a_get_leaves_the_line_clean():
    q = Queue()
    with pytest.raises(Timeout):
        with Timeout(0.02):
            q.get()
    assert q.getters == 0
    q.put(1)
    assert q.get_nowait() == 1


def test_blocking_on_a_queue_nothing_can_fill_raises_loopexit_and_cleans_up():
    q = Queue()
    with pytest.raises(LoopExit):
        q.get()
    assert q.getters == 0


# -- fairness --------------------------------------------------------------------------
def test_blocked_getters_are_served_in_the_order_they_blocked():
    q = Queue()
    got = []

    def getter(name):
        got.append((name, q.get()))

    getters = [spawn(getter, name) for name in "abcde"]
    run_until(lambda: q.getters == 5)
    for item in range(5):
        q.put(item)
    for glet in getters:
        glet.get(timeout=10)
    assert got == [("a", 0), ("b", 1), ("c", 2), ("d", 3), ("e", 4)]


def test_blocked_putters_are_served_in_the_order_they_blocked():
    q = Queue(1)
    q.put("pre")
    putters = [spawn(q.put, name) for name in "abcde"]
    run_until(lambda: q.putters == 5)
    assert [q.get(timeout=10) for _ in range(6)] == ["pre", *"abcde"]
    for glet in putters:
        glet.get(timeout=10)


def test_a_getter_robbed_by_get_nowait_waits_again_first_in_line():
    q = Queue()
    got = {}

    def getter(name):
        got[name] = q.get()

    first, second = spawn(getter, "first"), spawn(getter, "second")
    run_until(lambda: q.getters == 2)
    q.put("x")  # wakes "first" ...
    assert q.get_nowait() == "x"  # ... but this caller takes it before "first" runs
    q.put("y")
    first.get(timeout=10)
    assert got == {"first": "y"}
    q.put("z")
    second.get(timeout=10)
    assert got == {"first": "y", "second": "z"}


# -- nothing is lost ------------------------------------------------------------------
def test_a_getter_killed_after_being_woken_leaves_the_item_to_the_next_getter():
    q = Queue()
    doomed = spawn(q.get)
    survivor = spawn(q.get)
    run_until(lambda: q.getters == 2)
    doomed.kill(block=False)  # the kill is queued before the wake-up below
    q.put("precious")
    assert survivor.get(timeout=10) == "precious"
    assert isinstance(doomed.get(timeout=10), GreenletExit)
    assert q.getters == 0 and q.empty()


def test_a_getter_timing_out_after_being_woken_leaves_the_item_in_the_queue():
    q = Queue()
    # Both timers are due by the time the hub looks; the earlier deadline runs
    # first, so the put wakes the getter and its own timeout hits it right after.
    get_hub().loop.call_later(0.05, q.put, "precious")
    getter = spawn(q.get, timeout=0.1)
    run_until(lambda: q.getters == 1)
    time.sleep(0.2)  # a blocking sleep: both deadlines pass while the hub cannot run
    with pytest.raises(Empty):
        getter.get(timeout=10)
    assert q.get_nowait() == "precious"


def test_a_getter_killed_while_waiting_leaves_the_line():
    q = Queue()
    doomed = spawn(q.get)
    run_until(lambda: q.getters == 1)
    doomed.kill(timeout=10)
    assert q.getters == 0
    q.put(1)
    assert q.get_nowait() == 1


def test_a_putter_killed_after_being_woken_passes_the_slot_to_the_next_putter():
    q = Queue(1)
    q.put("pre")
    doomed = spawn(q.put, "doomed")
    survivor = spawn(q.put, "survivor")
    run_until(lambda: q.putters == 2)
    doomed.kill(block=False)
    assert q.get() == "pre"  # frees the slot and wakes "doomed", which dies first
    survivor.get(timeout=10)
    assert q.get_nowait() == "survivor"
    assert q.empty() and q.putters == 0


def test_many_producers_and_consumers_deliver_every_item_once():
    q = Queue(3)
    received = []

    def produce(base):
        for i in range(200):
            q.put(base + i)

    def consume():
        while True:
            item = q.get(timeout=5)
            if item is None:
                return
            received.append(item)

    consumers = [spawn(consume) for _ in range(4)]
    producers = [spawn(produce, base) for base in (0, 1000, 2000)]
    for glet in producers:
        glet.get(timeout=30)
    for _ in consumers:
        q.put(None)
    for glet in consumers:
        glet.get(timeout=30)
    assert sorted(received) == sorted(b + i for b in (0, 1000, 2000) for i in range(200))


def test_lifo_and_priority_queues_wake_blocked_getters():
    lifo, prio = LifoQueue(), PriorityQueue()
    getters = [spawn(lifo.get), spawn(prio.get)]
    run_until(lambda: lifo.getters == 1 and prio.getters == 1)
    lifo.put("l")
    prio.put((1, "p"))
    assert [g.get(timeout=10) for g in getters] == ["l", (1, "p")]


# -- JoinableQueue ---------------------------------------------------------------------
def test_join_waits_until_every_item_is_marked_done():
    q = JoinableQueue()
    processed = []

    def worker():
        while True:
            item = q.get()
            processed.append(item)
            q.task_done()

    spawn(worker)
    for i in range(10):
        q.put(i)
    assert q.unfinished_tasks == 10
    assert q.join(timeout=10) is True
    assert processed == list(range(10))
    assert q.unfinished_tasks == 0


def test_join_wakes_every_joiner():
    q = JoinableQueue()
    q.put(1)
    joiners = [spawn(q.join, 10) for _ in range(3)]
    run_until(lambda: all(g.started for g in joiners))
    q.get()
    q.task_done()
    assert [g.get(timeout=10) for g in joiners] == [True, True, True]


def test_join_times_out_returning_false():
    q = JoinableQueue()
    q.put(1)
    assert q.join(timeout=0.02) is False
    assert q.join(timeout=0) is False


def test_join_on_a_queue_with_nothing_unfinished_returns_at_once():
    assert JoinableQueue().join() is True


def test_task_done_too_many_times_raises_value_error():
    q = JoinableQueue()
    q.put(1)
    q.get()
    q.task_done()
    with pytest.raises(ValueError):
        q.task_done()
    assert q.unfinished_tasks == 0


# -- Channel ---------------------------------------------------------------------------
def test_channel_put_blocks_until_a_getter_takes_the_item():
    channel = Channel()
    putter = spawn(channel.put, "item")
    run_until(lambda: channel.putters == 1)
    assert not putter.ready()
    assert channel.balance == 1
    assert channel.get(timeout=10) == "item"
    putter.get(timeout=10)
    assert channel.balance == 0


def test_channel_get_blocks_until_a_putter_offers():
    channel = Channel()
    getter = spawn(channel.get)
    run_until(lambda: channel.getters == 1)
    assert channel.balance == -1
    channel.put("item", timeout=10)
    assert getter.get(timeout=10) == "item"


def test_channel_nowait_calls_need_a_partner():
    channel = Channel()
    with pytest.raises(Full):
        channel.put_nowait(1)
    with pytest.raises(Empty):
        channel.get_nowait()
    assert channel.qsize() == 0 and channel.empty() and channel.full()
    getter = spawn(channel.get)
    run_until(lambda: channel.getters == 1)
    channel.put_nowait("handed over")
    assert getter.get(timeout=10) == "handed over"


def test_channel_put_that_times_out_withdraws_its_item():
    channel = Channel()
    with pytest.raises(Full):
        channel.put("late", timeout=0.02)
    assert channel.putters == 0
    with pytest.raises(Empty):
        channel.get_nowait()


def test_channel_get_times_out_with_empty():
    channel = Channel()
    with pytest.raises(Empty):
        channel.get(timeout=0.02)
    assert channel.getters == 0


def test_channel_put_taken_just_before_its_deadline_succeeds():
    channel = Channel()
    taken = []
    # As above: the get is due first, the putter's timeout right after it.
    get_hub().loop.call_later(0.05, lambda: taken.append(channel.get_nowait()))
    putter = spawn(channel.put, "item", timeout=0.1)
    run_until(lambda: channel.putters == 1)
    time.sleep(0.2)
    putter.get(timeout=10)  # taken: the put must not report Full
    assert taken == ["item"]


def test_channel_serves_putters_in_order():
    channel = Channel()
    putters = [spawn(channel.put, name) for name in "abc"]
    run_until(lambda: channel.putters == 3)
    assert [channel.get(timeout=10) for _ in range(3)] == ["a", "b", "c"]
    for glet in putters:
        glet.get(timeout=10)


def test_channel_getter_killed_after_a_nowait_offer_leaves_it_for_the_next_getter():
    channel = Channel()
    doomed = spawn(channel.get)
    run_until(lambda: channel.getters == 1)
    doomed.kill(block=False)
    channel.put_nowait("offer")
    doomed.join(10)
    assert channel.get_nowait() == "offer"


def test_a_woken_getter_that_dies_cannot_wake_the_next_task_of_its_worker():
    q = Queue()
    doomed = spawn(q.get)
    run_until(lambda: q.getters == 1)

    def sleeper():
        started = time.monotonic()
        sleep(0.3)
        return time.monotonic() - started

    # Queued in this order: the kill, the start of a task that reuses the dying
    # task's worker, then the wake-up meant for the dead getter.
    doomed.kill(block=False)
    task = spawn(sleeper)
    q.put("item")
    assert task.get(timeout=10) >= 0.25  # a stale wake-up would end the sleep early
    assert q.get_nowait() == "item"


def test_peek_returns_the_next_item_and_leaves_it_for_get():
    for cls, expected in ((Queue, 1), (SimpleQueue, 1), (LifoQueue, 3), (PriorityQueue, 1)):
        queue = cls()
        for item in (2, 1, 3) if cls is PriorityQueue else (1, 2, 3):
            queue.put(item)
        assert queue.peek() == expected == queue.peek_nowait()
        assert queue.get() == expected
    empty = Queue()
    with pytest.raises(Empty):
        empty.peek_nowait()
    # A peek that waited passes the turn on: a getter queued behind it gets the item.
    peeked, got = [], []
    spawn(lambda: peeked.append(empty.peek()))
    getter = spawn(lambda: got.append(empty.get()))
    sleep(0)
    empty.put("x")
    getter.join(5)
    assert peeked == ["x"] and got == ["x"]
