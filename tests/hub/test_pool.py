"""Groups and pools: membership, join/kill, the size bound, map/imap/apply."""

from __future__ import annotations

import pytest

from greenpatch import Greenlet, GreenletExit, getcurrent, sleep, spawn
from greenpatch.hub.pool import Group, Pool, PoolFull
from greenpatch.hub.queue import Full, Queue


def run_until(condition, limit=10_000):
    """Let other greenlets run (sleep(0) is a deterministic turn) until condition()."""
    for _ in range(limit):
        if condition():
            return
        sleep(0)
    raise AssertionError("condition never became true")


class Gates:
    """One queue per key: ``wait(key)`` blocks a task until ``open(key)``."""

    def __init__(self):
        self.queues = {}

    def _queue(self, key):
        return self.queues.setdefault(key, Queue())

    def wait(self, key):
        self._queue(key).get(timeout=10)

    def open(self, key):
        self._queue(key).put(None)


class Concurrency:
    """Counts how many tracked calls run at once, and the most ever seen."""

    def __init__(self):
        self.running = 0
        self.most = 0

    def __enter__(self):
        self.running += 1
        self.most = max(self.most, self.running)

    def __exit__(self, *exc_info):
        self.running -= 1


# -- Group membership, join, kill ---------------------------------------------------
def test_group_tracks_members_until_they_finish():
    group = Group()
    gate = Queue()
    glet = group.spawn(gate.get)
    assert len(group) == 1 and glet in group and list(group) == [glet]
    gate.put("done")
    assert glet.get(timeout=10) == "done"
    run_until(lambda: len(group) == 0)
    assert glet not in group


def test_group_add_and_discard():
    group = Group()
    glet = Greenlet(sleep, 10)
    group.add(glet)
    group.add(glet)
    assert len(group) == 1
    group.discard(glet)
    assert len(group) == 0
    group.discard(glet)  # not a member: no error
    assert not glet.started


def test_group_made_with_greenlets_tracks_them():
    first, second = spawn(sleep, 0), spawn(sleep, 0)
    group = Group(first, second)
    assert len(group) == 2
    assert group.join(timeout=10) is True


def test_group_join_waits_for_every_member():
    group = Group()
    done = []
    for i in range(5):
        group.spawn(lambda i=i: (sleep(0.001 * i), done.append(i)))
    assert group.join(timeout=10) is True
    assert sorted(done) == list(range(5)) and len(group) == 0


def test_group_join_times_out_returning_false():
    group = Group()
    gate = Queue()
    group.spawn(gate.get)
    assert group.join(timeout=0.02) is False
    gate.put(None)
    assert group.join(timeout=10) is True


def test_group_join_raise_error_reraises_a_members_failure():
    group = Group()
    gate = Queue()

    def fail():
        raise KeyError("boom")

    slow = group.spawn(gate.get)
    group.spawn(fail)
    with pytest.raises(KeyError, match="boom"):
        group.join(timeout=10, raise_error=True)
    assert slow in group  # it raised as soon as the failure happened
    gate.put(None)
    assert group.join(timeout=10) is True


def test_group_kill_kills_every_member_and_waits():
    group = Group()
    members = [group.spawn(sleep, 10) for _ in range(3)]
    sleep(0)
    group.kill(timeout=10)
    assert len(group) == 0
    assert all(g.dead and isinstance(g.value, GreenletExit) for g in members)


def test_group_kill_with_an_exception_and_without_blocking():
    group = Group()
    member = group.spawn(sleep, 10)
    sleep(0)
    group.kill(ValueError("stop"), block=False)
    assert member in group.dying
    member.join(10)
    assert isinstance(member.exception, ValueError)
    run_until(lambda: len(group) == 0 and not group.dying)


def test_group_kill_spares_the_calling_member():
    group = Group()
    other = group.spawn(sleep, 10)

    def killer():
        group.kill(timeout=10)
        return getcurrent() in group

    assert group.spawn(killer).get(timeout=10) is True
    assert other.dead


def test_group_killone():
    group = Group()
    doomed, spared = group.spawn(sleep, 10), group.spawn(sleep, 10)
    sleep(0)
    group.killone(doomed, timeout=10)
    assert doomed.dead and not spared.dead
    group.kill(timeout=10)


def test_plain_group_is_never_full():
    group = Group()
    assert group.full() is False
    assert group.wait_available() is None


# -- Pool bound ------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, -1, 1.5, "2", True])
def test_pool_size_must_be_a_positive_int_or_none(size):
    with pytest.raises(ValueError):
        Pool(size)


def test_pool_never_runs_more_than_its_size():
    pool = Pool(3)
    tracker = Concurrency()

    def work(i):
        with tracker:
            for _ in range(i % 4 + 1):
                sleep(0)
        return i

    glets = [pool.spawn(work, i) for i in range(30)]
    assert [g.get(timeout=10) for g in glets] == list(range(30))
    assert tracker.most == 3


def test_pool_spawn_waits_while_full():
    pool = Pool(1)
    gates = Gates()
    first = pool.spawn(gates.wait, "first")
    assert pool.full() and pool.free_count() == 0
    spawner = spawn(pool.spawn, gates.wait, "second")
    run_until(lambda: spawner.started)
    sleep(0)
    assert not spawner.ready()  # still waiting for room
    gates.open("first")
    second = spawner.get(timeout=10)
    assert first.dead and second in pool
    gates.open("second")
    assert pool.join(timeout=10)


def test_pool_spawners_get_room_in_the_order_they_waited():
    pool = Pool(1)
    gates = Gates()
    pool.spawn(gates.wait, "hold")
    order = []
    spawners = [spawn(pool.spawn, order.append, name) for name in "abc"]
    run_until(lambda: all(s.started for s in spawners))
    gates.open("hold")
    assert pool.join(timeout=10)
    run_until(lambda: all(s.ready() for s in spawners) and len(order) == 3)
    assert order == ["a", "b", "c"]


def test_pool_add_without_room_raises_pool_full():
    pool = Pool(1)
    gate = Queue()
    pool.spawn(gate.get)
    with pytest.raises(PoolFull):
        pool.add(Greenlet(sleep, 0), blocking=False)
    with pytest.raises(Full):  # PoolFull is a queue.Full
        pool.add(Greenlet(sleep, 0), timeout=0.02)
    assert len(pool) == 1
    gate.put(None)
    pool.join(timeout=10)


def test_pool_wait_available_returns_the_free_count():
    pool = Pool(2)
    gate = Queue()
    assert pool.wait_available() == 2
    pool.spawn(gate.get)
    pool.spawn(gate.get)
    assert pool.wait_available(timeout=0.02) == 0
    waiter = spawn(pool.wait_available, 10)
    run_until(lambda: waiter.started)
    gate.put(None)
    assert waiter.get(timeout=10) == 1
    gate.put(None)
    pool.join(timeout=10)


def test_unbounded_pool_is_never_full():
    pool = Pool()
    glets = [pool.spawn(sleep, 0) for _ in range(50)]
    assert not pool.full() and pool.free_count() == 1
    assert pool.join(timeout=10)
    assert all(g.dead for g in glets)


# -- map, imap, apply ------------------------------------------------------------------
def test_map_returns_results_in_input_order():
    assert Pool(3).map(lambda x: x * x, range(10)) == [x * x for x in range(10)]
    assert Group().map(str, [1, 2]) == ["1", "2"]


def test_map_propagates_the_first_error():
    def check(x):
        if x == 3:
            raise ValueError(f"bad {x}")
        return x

    with pytest.raises(ValueError, match="bad 3"):
        Pool(2).map(check, range(6))


def test_imap_yields_in_input_order_when_calls_finish_out_of_order():
    pool = Pool(5)
    gates = Gates()
    results = pool.imap(lambda i: (gates.wait(i), i)[1], range(5))
    got = []
    consumer = spawn(lambda: got.extend(results))
    for i in reversed(range(5)):
        gates.open(i)
        sleep(0)
    consumer.get(timeout=10)
    assert got == [0, 1, 2, 3, 4]


def test_imap_unordered_yields_in_completion_order():
    pool = Pool(5)
    gates = Gates()
    results = pool.imap_unordered(lambda i: (gates.wait(i), i)[1], range(5))
    got = []

    def consume():
        for item in results:
            got.append(item)

    consumer = spawn(consume)
    release = [3, 1, 4, 0, 2]
    for count, i in enumerate(release, 1):
        gates.open(i)
        run_until(lambda count=count: len(got) == count)
    consumer.get(timeout=10)
    assert got == release


def test_imap_zips_several_iterables():
    assert list(Pool(2).imap(lambda a, b: a + b, [1, 2, 3], [10, 20, 30, 40])) == [11, 22, 33]


@pytest.mark.parametrize("unordered", [False, True])
def test_imap_never_runs_more_than_the_pool_size_nor_pulls_the_whole_input(unordered):
    pool = Pool(2)
    tracker = Concurrency()
    pulled = []

    def inputs():
        for i in range(100):
            pulled.append(i)
            yield i

    def work(i):
        with tracker:
            sleep(0)
            sleep(0)
        return i

    imap = pool.imap_unordered if unordered else pool.imap
    results = imap(work, inputs())
    first = next(results)
    assert first in (0, 1)
    assert len(pulled) <= 4  # two running, perhaps one more pulled, nothing like 100
    rest = list(results)
    assert sorted([first, *rest]) == list(range(100))
    assert tracker.most == 2


def test_imap_maxsize_bounds_unconsumed_results_in_an_unbounded_group():
    pulled = []

    def inputs():
        for i in range(50):
            pulled.append(i)
            yield i

    results = Group().imap(lambda i: i, inputs(), maxsize=3)
    assert next(results) == 0
    run_until(lambda: len(pulled) >= 3)
    for _ in range(20):
        sleep(0)
    assert len(pulled) <= 5  # one yielded + three spawned ahead, perhaps one pulled more
    assert list(results) == list(range(1, 50))


def test_imap_raises_a_calls_error_at_its_position():
    def check(x):
        if x == 2:
            raise ValueError("two")
        return x

    results = Pool(4).imap(check, range(5))
    assert next(results) == 0
    assert next(results) == 1
    with pytest.raises(ValueError, match="two"):
        next(results)
    with pytest.raises(StopIteration):
        next(results)


def test_imap_raises_an_error_of_the_input_after_the_results_before_it():
    def inputs():
        yield 1
        yield 2
        raise OSError("input broke")

    results = Pool(2).imap(lambda x: x * 10, inputs())
    assert next(results) == 10
    assert next(results) == 20
    with pytest.raises(OSError, match="input broke"):
        next(results)


def test_imap_close_stops_pulling_input():
    pulled = []

    def inputs():
        for i in range(1000):
            pulled.append(i)
            yield i

    pool = Pool(1)
    results = pool.imap(lambda i: i, inputs())
    assert next(results) == 0
    results.close()
    assert pool.join(timeout=10)
    sleep(0)
    count = len(pulled)
    for _ in range(10):
        sleep(0)
    assert len(pulled) == count < 10
    assert list(results) == []


def test_apply_returns_the_result_and_raises_errors():
    pool = Pool(2)
    assert pool.apply(divmod, (7, 2)) == (3, 1)
    assert pool.apply(dict, kwds={"a": 1}) == {"a": 1}
    with pytest.raises(ZeroDivisionError):
        pool.apply(divmod, (1, 0))


def test_apply_from_a_member_of_a_full_pool_runs_in_place():
    pool = Pool(1)
    outer = pool.spawn(lambda: pool.apply(lambda: getcurrent()))
    assert outer.get(timeout=10) is outer


def test_apply_async_returns_the_greenlet_and_calls_back_with_the_result():
    pool = Pool(2)
    results = Queue()
    glet = pool.apply_async(pow, (2, 10), callback=results.put)
    assert isinstance(glet, Greenlet)
    assert glet.get(timeout=10) == 1024
    assert results.get(timeout=10) == 1024


def test_apply_async_does_not_call_back_on_failure():
    pool = Pool(2)
    called = []
    glet = pool.apply_async(divmod, (1, 0), callback=called.append)
    glet.join(10)
    assert isinstance(glet.exception, ZeroDivisionError)
    for _ in range(5):
        sleep(0)
    assert called == []


# -- gevent's Pool(greenlet_class=...) and map_async (issue 16) -------------------------


def test_pool_takes_a_greenlet_class():
    import greenpatch
    from greenpatch.pool import Pool

    class Mine(greenpatch.Greenlet):
        pass

    pool = Pool(2, greenlet_class=Mine)
    assert type(pool.spawn(lambda: None)) is Mine
    pool.join()
    with pytest.raises(TypeError, match=r"subclass of greenpatch\.Greenlet"):
        Pool(2, greenlet_class=object)


def test_map_async_returns_a_greenlet_and_calls_back():
    from greenpatch import Event
    from greenpatch.pool import Group

    called = []
    done = Event()
    job = Group().map_async(
        lambda n: n + 1, range(3), callback=lambda r: (called.append(r), done.set())
    )
    assert job.get() == [1, 2, 3]
    done.wait()
    assert called == [[1, 2, 3]]
