"""Green select.select, select.poll and selectors.DefaultSelector."""

from __future__ import annotations

import os
import select as stdlib_select
import selectors as stdlib_selectors
import socket
import textwrap

import pytest

import greenpatch
from greenpatch.hub.io import waiting_fds
from greenpatch.patcher.green import select as gselect
from greenpatch.patcher.green import selectors as gselectors
from tests.patcher._interpreter import run_script


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_select_reports_readable_and_writable_like_the_stdlib(pair):
    a, b = pair
    b.send(b"x")
    green = gselect.select([a], [a], [], 5)
    plain = stdlib_select.select([a], [a], [], 5)
    assert green == plain == ([a], [a], [])


def test_select_waits_cooperatively_until_data_arrives(pair):
    a, b = pair
    glet = greenpatch.spawn(gselect.select, [a], [], [], 10)
    greenpatch.sleep(0)
    assert not glet.ready()
    b.send(b"x")
    assert glet.get(timeout=10) == ([a], [], [])


def test_select_timeout_returns_empty_lists(pair):
    a, _ = pair
    assert gselect.select([a], [], [], 0.02) == ([], [], [])
    assert gselect.select([a], [], [], 0) == ([], [], [])


def test_select_reports_every_descriptor_ready_in_the_same_iteration():
    pairs = [socket.socketpair() for _ in range(5)]
    try:
        for _, b in pairs:
            b.send(b"x")
        readers = [a for a, _ in pairs]
        readable, _, _ = gselect.select(readers, [], [], 5)
        assert readable == readers
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_select_rejects_bad_arguments_like_the_stdlib():
    with pytest.raises(TypeError):
        gselect.select([object()], [], [], 0.01)
    with pytest.raises(ValueError):
        gselect.select([-1], [], [], 0.01)
    with pytest.raises(ValueError):
        gselect.select([], [], [], -1)


def test_select_leaves_no_watchers_behind(pair):
    a, _ = pair
    loop = greenpatch.get_hub().loop
    before = loop.active_watcher_count
    gselect.select([a], [], [], 0.01)
    with pytest.raises(greenpatch.Timeout), greenpatch.Timeout(0.01):
        gselect.select([a], [], [])
    assert loop.active_watcher_count == before


def test_poll_register_modify_unregister_and_poll(pair):
    a, b = pair
    poller = gselect.poll()
    poller.register(a, gselect.POLLIN)
    assert poller.poll(20) == []
    b.send(b"x")
    assert poller.poll(5000) == [(a.fileno(), gselect.POLLIN)]
    poller.modify(a, gselect.POLLOUT)
    assert poller.poll(5000) == [(a.fileno(), gselect.POLLOUT)]
    poller.unregister(a)
    with pytest.raises(KeyError):
        poller.unregister(a)
    with pytest.raises(FileNotFoundError):
        poller.modify(a, gselect.POLLIN)


def test_poll_reports_hangup(pair):
    a, b = pair
    poller = gselect.poll()
    poller.register(a, gselect.POLLIN)
    glet = greenpatch.spawn(poller.poll, 5000)
    greenpatch.sleep(0)
    b.close()
    events = glet.get(timeout=10)
    assert events and events[0][0] == a.fileno()
    assert events[0][1] & (gselect.POLLHUP | gselect.POLLIN)


def test_default_selector_waits_cooperatively(pair):
    a, b = pair
    with gselectors.DefaultSelector() as selector:
        assert isinstance(selector, stdlib_selectors.BaseSelector)
        selector.register(a, stdlib_selectors.EVENT_READ, data="payload")
        assert selector.select(0) == []
        glet = greenpatch.spawn(selector.select, 10)
        greenpatch.sleep(0)
        b.send(b"x")
        ((key, mask),) = glet.get(timeout=10)
        assert key.fileobj is a and key.data == "payload" and mask == stdlib_selectors.EVENT_READ
        selector.modify(a, stdlib_selectors.EVENT_WRITE)
        ((key, mask),) = selector.select(5)
        assert mask == stdlib_selectors.EVENT_WRITE
        assert selector.select(0.01) == [(key, mask)]


def test_default_selector_timeout(pair):
    a, _ = pair
    with gselectors.DefaultSelector() as selector:
        selector.register(a, stdlib_selectors.EVENT_READ)
        assert selector.select(0.02) == []


def test_closing_a_socket_wakes_a_greenlet_selecting_on_it():
    from greenpatch.patcher.green import socket as gsocket

    a, b = gsocket.socketpair()
    errors = []

    def selector():
        try:
            gselect.select([a], [], [], 10)
        except OSError as exc:
            errors.append(exc.errno)

    loop = greenpatch.get_hub().loop
    before = loop.active_watcher_count
    glet = greenpatch.spawn(selector)
    greenpatch.sleep(0)
    a.close()
    glet.join(10)
    b.close()
    assert errors == [9]  # EBADF, not a hang and not a libev abort
    assert not waiting_fds()
    greenpatch.sleep(0.01)  # no stray cancellation reaches the main greenlet later
    assert loop.active_watcher_count == before


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    # Out-of-band data needs TCP (AF_UNIX socketpairs refuse MSG_OOB).
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return server, client


def test_select_waits_for_an_exceptional_condition_in_the_third_list():
    server, client = _tcp_pair()
    try:
        glet = greenpatch.spawn(gselect.select, [], [], [server], 10)
        greenpatch.sleep(0.01)
        assert not glet.ready()  # nothing exceptional yet: it waits
        client.send(b"!", socket.MSG_OOB)
        assert glet.get(timeout=10) == ([], [], [server])
        assert stdlib_select.select([], [], [server], 0) == ([], [], [server])
    finally:
        server.close()
        client.close()


def test_poll_reports_pollpri_for_urgent_data():
    server, client = _tcp_pair()
    try:
        poller = gselect.poll()
        poller.register(server, stdlib_select.POLLPRI)
        glet = greenpatch.spawn(poller.poll, 10_000)
        greenpatch.sleep(0.01)
        assert not glet.ready()
        client.send(b"!", socket.MSG_OOB)
        events = dict(glet.get(timeout=10))
        assert events[server.fileno()] & stdlib_select.POLLPRI
    finally:
        server.close()
        client.close()


@pytest.mark.skipif(not hasattr(stdlib_select, "epoll"), reason="epoll is Linux's")
def test_epoll_poll_waits_cooperatively_until_an_event_is_pending(pair):
    a, b = pair
    with gselect.epoll() as ep:
        ep.register(a.fileno(), stdlib_select.EPOLLIN)
        assert ep.poll(0) == []
        glet = greenpatch.spawn(ep.poll, 10)
        greenpatch.sleep(0.01)
        assert not glet.ready()  # waiting on the hub, not blocking it
        b.send(b"x")
        assert glet.get(timeout=10) == [(a.fileno(), stdlib_select.EPOLLIN)]
    assert waiting_fds() == []


@pytest.mark.skipif(not hasattr(stdlib_select, "epoll"), reason="epoll is Linux's")
def test_epoll_poll_times_out_and_keeps_the_stdlib_errors(pair):
    a, _ = pair
    ep = gselect.epoll()
    ep.register(a.fileno(), stdlib_select.EPOLLIN)
    assert ep.poll(0.02) == []
    with gselect.epoll.fromfd(os.dup(ep.fileno())) as copy:
        assert isinstance(copy, gselect.epoll)
    with pytest.raises(TypeError):
        ep.poll("soon")
    ep.close()
    with pytest.raises(ValueError, match="closed epoll"):
        ep.poll(1)


@pytest.mark.skipif(not hasattr(stdlib_select, "epoll"), reason="epoll is Linux's")
def test_a_patched_epoll_lets_a_thread_run_while_it_waits():
    out = run_script(
        textwrap.dedent(
            """
            import greenpatch
            greenpatch.patch_all()
            import select, selectors, socket, threading
            a, b = socket.socketpair()
            ep = select.epoll()
            ep.register(a.fileno(), select.EPOLLIN)
            threading.Timer(0.1, lambda: b.send(b"x")).start()
            print(bool(ep.poll(10)))
            with selectors.EpollSelector() as selector:
                selector.register(a, selectors.EVENT_READ)
                print(len(selector.select(10)))
            """
        )
    )
    assert out.split() == ["True", "1"]
