"""Greenlet tasks: spawn, join, get, kill, links, joinall/killall/iwait/wait."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

import greenpatch
from greenpatch import Greenlet, GreenletExit, Timeout, getcurrent, sleep, spawn
from greenpatch.hub import get_hub


def test_spawn_runs_and_get_returns_the_value():
    glet = spawn(lambda a, b=0: a + b, 2, b=3)
    assert glet.get(timeout=10) == 5
    assert glet.ready() and glet.successful() and glet.dead
    assert glet.value == 5 and glet.exception is None


def test_get_reraises_the_exception_with_its_traceback():
    def fail():
        raise ValueError("bad")

    glet = spawn(fail)
    with pytest.raises(ValueError, match="bad") as info:
        glet.get()
    assert not glet.successful()
    assert isinstance(glet.exception, ValueError)
    assert any(frame.name == "fail" for frame in info.traceback)


def test_get_nonblocking_and_with_timeout_raise_timeout():
    glet = spawn(sleep, 5)
    with pytest.raises(Timeout):
        glet.get(block=False)
    with pytest.raises(Timeout):
        glet.get(timeout=0.01)
    glet.kill()


def test_start_is_idempotent_and_the_task_runs_once():
    calls = []
    glet = Greenlet(calls.append, 1)
    assert not glet.started
    glet.start()
    glet.start()
    glet.join()
    assert calls == [1]


def test_subclass_overriding_run():
    class Doubler(Greenlet):
        def __init__(self, x):
            super().__init__()
            self.x = x

        def _run(self):
            return self.x * 2

    assert Doubler.spawn(21).get() == 42


def test_spawn_later_waits_before_starting():
    started = []
    glet = greenpatch.spawn_later(0.02, started.append, "late")
    sleep(0)
    assert started == []
    glet.join(10)
    assert started == ["late"]


def test_a_hub_whose_first_task_starts_later_runs_the_spawns_that_follow():
    # A fresh hub (a new thread's) with no spawn before: the first worker
    # starts from the timer of spawn_later, and then runs spawned tasks.
    results: list[object] = []

    def in_a_new_thread() -> None:
        def first() -> None:
            results.append("later")
            results.append(spawn(lambda: "spawned").get(timeout=10))

        greenpatch.spawn_later(0.01, first).join(10)
        results.append(greenpatch.joinall([spawn(lambda n=n: n) for n in range(3)]))

    thread = threading.Thread(target=in_a_new_thread)
    thread.start()
    thread.join(30)
    assert results[:2] == ["later", "spawned"]
    assert [glet.value for glet in results[2]] == [0, 1, 2]  # type: ignore[attr-defined]


def test_getcurrent_is_the_running_task():
    glet = spawn(getcurrent)
    assert glet.get() is glet


def test_join_with_timeout_returns_while_still_running():
    glet = spawn(sleep, 5)
    glet.join(timeout=0.01)
    assert not glet.ready()
    glet.kill()
    assert glet.ready()


def test_kill_wakes_joiners_and_counts_as_success():
    glet = spawn(sleep, 30)
    sleep(0)
    joined = []
    joiners = [spawn(lambda: (glet.join(), joined.append(1))) for _ in range(3)]
    sleep(0)
    glet.kill()
    greenpatch.joinall(joiners, timeout=10)
    assert joined == [1, 1, 1]
    assert glet.successful()
    assert isinstance(glet.value, GreenletExit)


def test_kill_with_a_custom_exception():
    glet = spawn(sleep, 30)
    sleep(0)
    glet.kill(ValueError("stop"))
    assert isinstance(glet.exception, ValueError)


def test_kill_before_start_means_it_never_runs():
    ran = []
    glet = spawn(ran.append, 1)
    glet.kill()
    sleep(0.01)
    assert ran == [] and glet.dead


def test_kill_runs_finally_blocks():
    cleaned = []

    def work():
        try:
            sleep(30)
        finally:
            cleaned.append("cleanup")

    glet = spawn(work)
    sleep(0)
    glet.kill(block=True, timeout=10)
    assert cleaned == ["cleanup"]


def test_kill_of_a_task_that_ignores_it_times_out():
    def stubborn():
        while True:
            try:
                sleep(30)
            except GreenletExit:
                pass

    glet = spawn(stubborn)
    sleep(0)
    glet.kill(timeout=0.05)
    assert not glet.dead
    glet.kill(ValueError)  # not caught
    assert glet.dead


def test_links_fire_once_after_completion():
    calls = []
    glet = spawn(lambda: 7)
    glet.link(lambda g: calls.append(("link", g.value)))
    glet.rawlink(lambda g: calls.append(("raw", g.value)))
    glet.join()
    sleep(0.01)
    sleep(0.01)
    assert sorted(calls) == [("link", 7), ("raw", 7)]


def test_link_added_after_completion_still_fires_once():
    glet = spawn(lambda: 1)
    glet.join()
    calls = []
    glet.rawlink(calls.append)
    sleep(0.01)
    sleep(0.01)
    assert calls == [glet]


def test_link_value_and_link_exception_filter():
    calls = []
    ok = spawn(lambda: 1)
    bad = spawn(lambda: 1 / 0)
    for glet in (ok, bad):
        glet.link_value(lambda g: calls.append(("value", g)))
        glet.link_exception(lambda g: calls.append(("exception", g)))
    greenpatch.joinall([ok, bad])
    sleep(0.01)
    sleep(0.01)
    assert sorted((kind, g is ok) for kind, g in calls) == [("exception", False), ("value", True)]


def test_unlink_prevents_the_callback():
    calls = []
    glet = spawn(sleep, 0.01)
    glet.rawlink(calls.append)
    glet.unlink(calls.append)
    glet.join()
    sleep(0.01)
    assert calls == []


def test_link_callback_may_block_because_it_runs_in_its_own_greenlet():
    done = []
    glet = spawn(lambda: 1)
    glet.link(lambda g: (sleep(0.01), done.append(g.value)))
    glet.join()
    greenpatch.wait(timeout=10)
    assert done == [1]


def test_joinall_with_raise_error_reraises():
    glets = [spawn(sleep, 0.01), spawn(lambda: 1 / 0)]
    with pytest.raises(ZeroDivisionError):
        greenpatch.joinall(glets, raise_error=True)


def test_joinall_with_timeout_returns_finished_ones():
    fast = spawn(lambda: 1)
    slow = spawn(sleep, 5)
    done = greenpatch.joinall([fast, slow], timeout=0.05)
    assert done == [fast]
    slow.kill()


def test_killall_kills_everything():
    glets = [spawn(sleep, 30) for _ in range(10)]
    sleep(0)
    greenpatch.killall(glets, timeout=10)
    assert all(g.dead for g in glets)


def test_iwait_yields_in_completion_order():
    glets = [spawn(lambda d: (sleep(d), d)[1], d) for d in (0.03, 0.01, 0.02)]
    order = [g.value for g in greenpatch.iwait(glets)]
    assert order == [0.01, 0.02, 0.03]


def test_iwait_count_and_wait_timeout():
    glets = [spawn(lambda d: (sleep(d), d)[1], d) for d in (0.01, 5, 5)]
    first = list(greenpatch.iwait(glets, count=1))
    assert [g.value for g in first] == [0.01]
    assert greenpatch.wait(glets[1:], timeout=0.01) == []
    greenpatch.killall(glets)


def test_repr_and_name():
    glet = Greenlet(sleep, 0)
    assert "new" in repr(glet) and glet.name.startswith("Greenlet-")
    glet.start()
    glet.join()
    assert "dead" in repr(glet)


def test_names_are_numbered_in_the_order_they_are_first_asked_for():
    first, second = spawn(sleep, 0), spawn(sleep, 0)
    second_number = int(second.name.rsplit("-", 1)[1])
    first_number = int(first.name.rsplit("-", 1)[1])
    assert first_number > second_number  # numbered when asked, as gevent's minimal_ident
    assert first.name == f"Greenlet-{first_number}"  # and kept
    first.name = "mine"
    assert first.name == "mine" and "'mine'" in repr(first)
    greenpatch.joinall([first, second])


def test_value_exception_and_exc_info_are_none_until_the_task_finishes():
    glet = spawn(sleep, 0.01)
    assert glet.value is None and glet.exception is None and glet.exc_info is None
    assert not glet.successful()
    glet.join()
    assert glet.successful() and glet.value is None and glet.exc_info is None


def test_kwargs_are_the_call_keywords_until_the_task_finishes():
    with_keywords = Greenlet(lambda a=0: a, a=7)
    without = Greenlet(lambda: 1)
    assert with_keywords.kwargs == {"a": 7} and without.kwargs == {}
    without.kwargs["a"] = 1  # a fresh dict: changing it changes nothing
    assert without.kwargs == {}
    without.kwargs = {}
    with_keywords.start()
    without.start()
    assert with_keywords.get(timeout=10) == 7 and without.get(timeout=10) == 1
    assert with_keywords.kwargs == {}  # released with the other arguments


def test_killing_a_task_that_never_started_finishes_it_with_the_exception():
    glet = spawn(sleep, 0)
    glet.kill(ValueError("never ran"))
    assert glet.dead and isinstance(glet.exception, ValueError)
    assert glet.exc_info is not None and glet.exc_info[0] is ValueError
    assert glet.value is None


def test_finished_task_releases_its_arguments():
    class Big:
        pass

    big = Big()
    ref = weakref.ref(big)
    glet = spawn(lambda b: None, big)
    del big
    glet.join()
    gc.collect()
    assert ref() is None


def test_workers_are_reused():
    hub = get_hub()
    spawn(lambda: None).join()
    idle = hub.module_state["greenpatch.hub.greenlet.idle_workers"]
    idle_before = len(idle)
    greenpatch.joinall([spawn(lambda: None) for _ in range(100)])
    assert len(idle) <= idle_before + 1


def test_late_timeout_does_not_hit_the_next_task_on_the_same_worker():
    def leaves_timeout_armed():
        Timeout(0.02).start()  # never cancelled

    spawn(leaves_timeout_armed).join()
    result = spawn(lambda: (sleep(0.1), "unharmed")[1])
    assert result.get(timeout=10) == "unharmed"


# -- gevent's module-level helpers (issue 16) -------------------------------------


def test_module_level_kill_does_not_wait_and_reaches_the_greenlet():
    import greenpatch

    sleeper = greenpatch.spawn(greenpatch.sleep, 5)
    greenpatch.sleep(0)
    greenpatch.kill(sleeper)
    assert not sleeper.dead  # gevent's kill() only schedules the exception
    sleeper.join()
    assert isinstance(sleeper.value, greenpatch.GreenletExit)


def test_spawn_raw_runs_a_plain_greenlet_and_reports_its_errors(capsys):
    import greenlet

    import greenpatch

    seen = []
    raw = greenpatch.spawn_raw(seen.append, 1)
    assert type(raw) is greenlet.greenlet
    failing = greenpatch.spawn_raw(int, "not a number")
    greenpatch.idle()
    assert seen == [1] and raw.dead and failing.dead
    assert "ValueError" in capsys.readouterr().err


def test_kill_reaches_a_raw_greenlet():
    import greenpatch

    finished = []

    def blocked():
        try:
            greenpatch.sleep(5)
        finally:
            finished.append(True)

    raw = greenpatch.spawn_raw(blocked)
    greenpatch.sleep(0)
    greenpatch.kill(raw)
    greenpatch.idle()
    assert finished == [True] and raw.dead


def test_a_subclass_may_set_its_name_before_greenlet_init():
    import greenpatch

    class Named(greenpatch.Greenlet):
        def __init__(self):
            self.name = "actor"
            greenpatch.Greenlet.__init__(self)

        def _run(self):
            return self.name

    assert Named.spawn().get() == "actor"


def test_raw_getcurrent_is_a_worker_but_getcurrent_is_the_task():
    import greenlet

    import greenpatch

    task = greenpatch.spawn(lambda: (greenlet.getcurrent(), greenpatch.getcurrent()))
    raw, current = task.get()
    assert current is task
    assert raw is not task  # documented in docs/hub.md and the migration guide
