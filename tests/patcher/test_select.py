"""Green select.select, select.poll and selectors.DefaultSelector."""

from __future__ import annotations

import json
import os
import select as stdlib_select
import selectors as stdlib_selectors
import socket
import sys
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


OOB_CASES = '''
import os, sys
PATCHED = sys.argv[1] == "patched"
if PATCHED:
    import greenpatch
    greenpatch.patch_all()
import json, select, selectors, socket, threading, time
from greenpatch.hub.io import waiting_fds

def tcp_pair():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return server, client

results = {}

def case(name, call, urgent=True):
    """``call(server)`` in a thread; the peer sends one urgent byte once it waits."""
    server, client = tcp_pair()
    out = []
    def run():
        try:
            out.append(call(server))
        except Exception as exc:
            out.append(type(exc).__name__)
    thread = threading.Thread(target=run)
    thread.start()
    if PATCHED:
        # The thread is a greenlet: make sure it waits on the hub before the
        # byte is sent, so the waiting path is what is compared.  (Plain, the
        # kernel's answer is the same whichever comes first.)
        while not waiting_fds():
            time.sleep(0.001)
    if urgent:
        client.send(b"!", socket.MSG_OOB)
    thread.join(30)
    results[name] = out[0] if out else "hung"
    server.close()
    client.close()

def fd_is(server, pairs):
    return [[fd == server.fileno(), events] for fd, events in pairs]

def named(server, lists):
    return [[obj is server for obj in found] for found in lists]

# select(): the third list, forever, with a timeout, beside the first list.
case("select_x", lambda s: named(s, select.select([], [], [s])))
case("select_x_timeout", lambda s: named(s, select.select([], [], [s], 10)))
case("select_rx_timeout", lambda s: named(s, select.select([s], [], [s], 10)))
case("select_x_nothing", lambda s: named(s, select.select([], [], [s], 0.2)), urgent=False)
def read_the_byte_then_select(s):
    select.select([], [], [s], 10)
    byte = s.recv(1, socket.MSG_OOB)
    return [byte.decode(), named(s, select.select([s], [], [s], 0.2))]
case("select_after_reading", read_the_byte_then_select)

# poll(): POLLPRI, forever (None and -1) and with a timeout; POLLIN alone does not see it.
def poll_for(mask, timeout):
    def call(s):
        poller = select.poll()
        poller.register(s, mask)
        return fd_is(s, poller.poll(timeout))
    return call
case("poll_pri", poll_for(select.POLLPRI, None))
case("poll_pri_-1", poll_for(select.POLLPRI, -1))
case("poll_pri_timeout", poll_for(select.POLLPRI, 10_000))
case("poll_in_pri_timeout", poll_for(select.POLLIN | select.POLLPRI, 10_000))
case("poll_in_only", poll_for(select.POLLIN, 200))

# epoll: EPOLLPRI, forever and with a timeout.
def epoll_for(mask, timeout):
    def call(s):
        with select.epoll() as ep:
            ep.register(s.fileno(), mask)
            return fd_is(s, ep.poll(timeout))
    return call
case("epoll_pri", epoll_for(select.EPOLLPRI, None))
case("epoll_pri_timeout", epoll_for(select.EPOLLPRI, 10))
case("epoll_in_pri_timeout", epoll_for(select.EPOLLIN | select.EPOLLPRI, 10))

# selectors know reading and writing only: urgent data is not an event there.
def selector(cls):
    def call(s):
        with cls() as sel:
            sel.register(s, selectors.EVENT_READ)
            return [events for _key, events in sel.select(0.2)]
    return call
for cls in ("DefaultSelector", "PollSelector", "SelectSelector", "EpollSelector"):
    case(cls, selector(getattr(selectors, cls)))
print(json.dumps(results, sort_keys=True))
'''


@pytest.mark.skipif(not hasattr(stdlib_select, "epoll"), reason="epoll is Linux's")
def test_urgent_data_is_reported_as_the_stdlib_reports_it(tmp_path):
    script = tmp_path / "oob.py"
    script.write_text(OOB_CASES)
    plain = json.loads(run_script("", argv=[sys.executable, "-W", "ignore", str(script), "plain"]))
    patched = json.loads(
        run_script("", argv=[sys.executable, "-W", "ignore", str(script), "patched"])
    )
    assert plain["select_x_timeout"] == [[], [], [True]]
    assert plain["poll_pri_timeout"] == [[True, stdlib_select.POLLPRI]]
    assert patched == plain
