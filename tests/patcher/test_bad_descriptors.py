"""A closed descriptor never aborts the process: the stdlib's answer, patched or not.

libev's epoll backend asserts (SIGABRT) when it registers a descriptor that is
not open.  Each script runs in a fresh interpreter, so an abort fails the test
with its exit status instead of killing pytest; the same script run plain gives
the stdlib's answer the patched one must match.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from tests.patcher._interpreter import run_script

# ``closed_fd()``: a descriptor number that is certainly not open (and that the
# hub, created first, cannot take over).
_PRELUDE = """
import sys
if sys.argv[1] == "patched":
    import greenpatch
    greenpatch.patch_all()
    greenpatch.sleep(0)
import errno, os, select, selectors, socket

def closed_fd():
    read_end, write_end = os.pipe()
    os.close(read_end)
    return read_end

def outcome(call):
    try:
        return repr(call())
    except OSError as exc:
        return "OSError " + errno.errorcode[exc.errno]
"""


def _both(body: str) -> tuple[str, str]:
    script = _PRELUDE + textwrap.dedent(body)
    plain = run_script("", argv=[sys.executable, "-W", "ignore", "-c", script, "plain"])
    patched = run_script("", argv=[sys.executable, "-W", "ignore", "-c", script, "patched"])
    return plain, patched


@pytest.mark.parametrize(
    "call",
    [
        "select.select([fd], [], [], 1)",
        "select.select([], [fd], [], 1)",
        "select.select([], [], [fd], 1)",
        "select.select([fd], [], [], None)",
    ],
)
def test_select_on_a_closed_descriptor_raises_ebadf(call: str) -> None:
    plain, patched = _both(f"fd = closed_fd()\nprint(outcome(lambda: {call}))\n")
    assert plain == "OSError EBADF"
    assert patched == plain


def test_poll_reports_a_closed_descriptor_as_pollnval() -> None:
    plain, patched = _both(
        """
        fd = closed_fd()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        print(poller.poll(1000) == [(fd, select.POLLNVAL)])
        """
    )
    assert plain == patched == "True"


def test_a_poll_selector_reports_a_closed_descriptor_as_ready() -> None:
    plain, patched = _both(
        """
        fd = closed_fd()
        selector = selectors.PollSelector()
        selector.register(fd, selectors.EVENT_READ)
        ready = [(key.fd, events) for key, events in selector.select(1)]
        print(ready == [(fd, selectors.EVENT_READ)])
        """
    )
    assert plain == patched == "True"


def test_the_default_selector_forgets_a_socket_closed_while_registered() -> None:
    # Linux's default is an EpollSelector: epoll drops a closed descriptor and
    # the select ends at its timeout, where a poll-based selector would call it
    # ready (websocket-client's ping timeout test relies on the former).
    plain, patched = _both(
        """
        a, b = socket.socketpair()
        selector = selectors.DefaultSelector()
        selector.register(a, selectors.EVENT_READ)
        selector.register(b, selectors.EVENT_WRITE)
        a.close()
        print([(key.fileobj is b, events) for key, events in selector.select(0.5)])
        """
    )
    if sys.platform == "linux":
        assert plain == "[(True, 2)]"
    assert patched == plain


def test_the_default_selector_ends_its_wait_as_ready_when_its_socket_is_closed_under_it() -> None:
    # With OS threads the selecting thread sees the data arrive before the other
    # thread has read it and closed the socket; a green waiter gets its turn only
    # after the close, which must then still end its wait as "ready", not leave
    # it to the timeout (websocket-client's WebSocketApp.close() from a timer
    # thread: run_forever returns at once, not after its 10 s select).
    out = run_script(
        textwrap.dedent(
            """
            import greenpatch
            greenpatch.patch_all()
            import selectors, socket

            a, b = socket.socketpair()
            selector = selectors.DefaultSelector()
            selector.register(a, selectors.EVENT_READ)
            waiter = greenpatch.spawn(selector.select, 60)
            greenpatch.sleep(0)  # the waiter runs until it waits
            b.send(b"x")
            a.recv(1)            # the data is there: no switch before the close
            a.close()
            ready = waiter.get(timeout=30)
            print([(key.fileobj is a, events & selectors.EVENT_READ) for key, events in ready])
            """
        )
    )
    assert out == "[(True, 1)]"


def test_wait_read_and_wait_write_on_a_closed_descriptor_raise_ebadf() -> None:
    out = run_script(
        textwrap.dedent(
            """
            import errno, os
            import greenpatch
            greenpatch.sleep(0)
            read_end, write_end = os.pipe()
            os.close(read_end)
            for wait in (greenpatch.wait_read, greenpatch.wait_write):
                try:
                    wait(read_end, timeout=5)
                except OSError as exc:
                    print(errno.errorcode[exc.errno])
            """
        )
    )
    assert out.split() == ["EBADF", "EBADF"]


def test_a_descriptor_closed_under_a_waiter_fails_every_wait_on_it() -> None:
    # The first greenlet's watcher is on the pipe when the pipe is closed behind
    # the hub's back; the second wait changes libev's interest in that number,
    # which is where libev would have aborted.
    out = run_script(
        textwrap.dedent(
            """
            import errno, os
            import greenpatch
            read_end, write_end = os.pipe()
            results = []
            def wait(how):
                try:
                    how(read_end, timeout=5)
                    results.append("ready")
                except OSError as exc:
                    results.append(errno.errorcode[exc.errno])
            first = greenpatch.spawn(wait, greenpatch.wait_read)
            greenpatch.sleep(0)
            assert read_end in greenpatch.hub.io.waiting_fds()
            os.close(read_end)
            second = greenpatch.spawn(wait, greenpatch.wait_write)
            greenpatch.joinall([first, second], timeout=10)
            print(results, greenpatch.hub.io.waiting_fds())
            """
        )
    )
    assert out == "['EBADF', 'EBADF'] []"
