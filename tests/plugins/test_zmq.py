"""greenpatch.zmq in this process: pyzmq sockets whose blocking calls wait on the hub.

No patching is needed here: the cooperative classes are used directly, in
greenlets of the test's hub.  Every scenario runs a ticker greenlet beside it
and checks that it kept ticking while the others waited -- the proof that the
waits went through the hub instead of blocking in libzmq.  (What ``patch_all()``
does to ``import zmq`` is in test_zmq_patched.py, in fresh interpreters.)
"""

from __future__ import annotations

import os
import socket as stdlib_socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

zmq = pytest.importorskip("zmq")

import greenpatch  # noqa: E402
from greenpatch.zmq import Context, Poller, Socket, select  # noqa: E402

WAIT = 10.0  # generous: a hang fails the test instead of the run


class Ticker:
    """A greenlet counting ticks every 5 ms: it only ticks while the hub runs."""

    def __init__(self) -> None:
        self.ticks = 0
        self._glet = greenpatch.spawn(self._run)

    def _run(self) -> None:
        while True:
            self.ticks += 1
            greenpatch.sleep(0.005)

    def stop(self) -> None:
        self._glet.kill()


@pytest.fixture
def ctx() -> Iterator[Any]:
    context = Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture
def ticker() -> Iterator[Ticker]:
    tick = Ticker()
    yield tick
    tick.stop()


def _until(predicate: Callable[[], bool], what: str) -> None:
    with greenpatch.Timeout(WAIT, AssertionError(f"gave up waiting for {what}")):
        while not predicate():
            greenpatch.sleep(0.001)


def _join(*glets: Any) -> None:
    with greenpatch.Timeout(WAIT, AssertionError("greenlets did not finish")):
        greenpatch.joinall(glets, raise_error=True)


def _pair(ctx: Any, kind: int, peer_kind: int, address: str = "inproc://pair") -> tuple[Any, Any]:
    server = ctx.socket(kind)
    server.bind(address)
    client = ctx.socket(peer_kind)
    client.connect(server.getsockopt_string(zmq.LAST_ENDPOINT))  # tcp://127.0.0.1:* bound
    return server, client


# -- the guide's patterns, each beside a ticker ------------------------------------------
def test_req_rep_pair_in_two_greenlets_lets_a_ticker_tick(ctx: Any, ticker: Ticker) -> None:
    server, client = _pair(ctx, zmq.REP, zmq.REQ, "tcp://127.0.0.1:*")
    replies = []

    def serve() -> None:
        for _ in range(5):
            request = server.recv()
            greenpatch.sleep(0.02)  # "work": the client's recv waits meanwhile
            server.send(b"World " + request)

    def ask() -> None:
        for number in range(5):
            client.send(b"%d" % number)
            replies.append(client.recv())

    before = ticker.ticks
    _join(greenpatch.spawn(ask), greenpatch.spawn(serve))
    assert replies == [b"World %d" % number for number in range(5)]
    assert ticker.ticks - before >= 10  # 5 x 20 ms of waiting: the ticker ran throughout


def test_pub_sub_with_a_slow_subscriber_gets_everything_while_a_ticker_ticks(
    ctx: Any, ticker: Ticker
) -> None:
    # XPUB is a PUB that hears subscriptions: waiting for the one below (a
    # cooperative recv too) avoids PUB's "slow joiner" losses without a sleep.
    publisher, subscriber = _pair(ctx, zmq.XPUB, zmq.SUB, "inproc://news")
    subscriber.setsockopt(zmq.SUBSCRIBE, b"news")
    assert publisher.recv() == b"\x01news"
    got = []

    def subscribe() -> None:
        while True:
            _topic, body = subscriber.recv_multipart()
            if body == b"end":
                return
            got.append(body)
            greenpatch.sleep(0.005)  # slow: the publisher runs ahead

    def publish() -> None:
        for number in range(20):
            publisher.send_multipart([b"news", b"%d" % number])
            publisher.send_multipart([b"weather", b"filtered out"])
        publisher.send_multipart([b"news", b"end"])

    before = ticker.ticks
    _join(greenpatch.spawn(subscribe), greenpatch.spawn(publish))
    assert got == [b"%d" % number for number in range(20)]
    assert ticker.ticks - before >= 10  # 20 x 5 ms of a slow subscriber


def test_push_pull_fan_out_over_100_greenlets_delivers_every_task(ctx: Any, ticker: Ticker) -> None:
    ventilator = ctx.socket(zmq.PUSH)
    ventilator.bind("inproc://tasks")
    sink = ctx.socket(zmq.PULL)
    sink.bind("inproc://results")
    workers = []

    def work() -> None:
        tasks = ctx.socket(zmq.PULL)
        tasks.connect("inproc://tasks")
        results = ctx.socket(zmq.PUSH)
        results.connect("inproc://results")
        try:
            while True:
                task = tasks.recv()
                if task == b"stop":
                    return
                greenpatch.sleep(0.001)
                results.send(task)
        finally:
            tasks.close(linger=0)
            results.close()

    workers = [greenpatch.spawn(work) for _ in range(100)]
    greenpatch.sleep(0.05)  # let every worker connect: PUSH spreads over connected peers
    before = ticker.ticks
    for number in range(500):
        ventilator.send(b"%d" % number)
    received = sorted(int(sink.recv()) for _ in range(500))
    assert received == list(range(500))
    for _ in workers:
        ventilator.send(b"stop")
    _join(*workers)
    assert ticker.ticks > before


# -- flags, timeouts ------------------------------------------------------------------------
def test_noblock_raises_again_at_once(ctx: Any) -> None:
    server, _client = _pair(ctx, zmq.PULL, zmq.PUSH)
    started = time.monotonic()
    with pytest.raises(zmq.Again):
        server.recv(zmq.NOBLOCK)
    with pytest.raises(zmq.Again):
        server.recv_multipart(flags=zmq.DONTWAIT)
    assert time.monotonic() - started < 1.0


def test_rcvtimeo_raises_again_after_roughly_its_time_while_a_ticker_ticks(
    ctx: Any, ticker: Ticker
) -> None:
    server, _client = _pair(ctx, zmq.PULL, zmq.PUSH)
    server.RCVTIMEO = 200
    before = ticker.ticks
    started = time.monotonic()
    with pytest.raises(zmq.Again):
        server.recv()
    elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 2.0
    assert ticker.ticks - before >= 5  # 200 ms spent on the hub, not in libzmq
    server.RCVTIMEO = 0
    with pytest.raises(zmq.Again):
        server.recv()


def test_sndtimeo_raises_again_when_the_queue_stays_full(ctx: Any) -> None:
    sender = ctx.socket(zmq.PUSH)
    sender.SNDHWM = 1
    sender.SNDTIMEO = 200
    sender.bind("inproc://nobody-reads")  # bound, no peer: PUSH cannot queue anything
    started = time.monotonic()
    with pytest.raises(zmq.Again):
        sender.send(b"x")
    assert 0.15 <= time.monotonic() - started < 2.0


def test_a_timed_out_or_killed_receiver_does_not_strand_the_next(ctx: Any) -> None:
    server, client = _pair(ctx, zmq.PULL, zmq.PUSH)
    got = []

    def receive_with_timeout() -> None:
        with greenpatch.Timeout(0.05, False):
            server.recv()

    def receive() -> None:
        got.append(server.recv())

    impatient = greenpatch.spawn(receive_with_timeout)
    doomed = greenpatch.spawn(receive)
    patient = greenpatch.spawn(receive)
    greenpatch.sleep(0.01)
    doomed.kill()
    _join(impatient)
    client.send(b"one")
    _join(patient)
    assert got == [b"one"]


def test_a_receiver_killed_after_being_chosen_passes_its_turn_on(ctx: Any) -> None:
    server, client = _pair(ctx, zmq.PULL, zmq.PUSH)
    first = greenpatch.spawn(server.recv)
    second = greenpatch.spawn(server.recv)
    greenpatch.sleep(0.01)  # both waiting, first in line
    client.send(b"one")
    first.kill(block=False)  # queued: it lands after the wake-up below is decided
    assert server.getsockopt(zmq.EVENTS) & zmq.POLLIN  # chooses `first` for the message
    _join(second)  # `first` dies without taking it: `second` must be woken instead
    assert second.value == b"one"
    assert first.dead and first.value != b"one"  # killed: it took nothing


# -- closing and termination --------------------------------------------------------------
def test_close_wakes_a_greenlet_waiting_in_recv_with_enotsock(ctx: Any) -> None:
    server, _client = _pair(ctx, zmq.PULL, zmq.PUSH)
    errors = []

    def receive() -> None:
        try:
            server.recv()
        except zmq.ZMQError as exc:
            errors.append(exc.errno)

    waiters = [greenpatch.spawn(receive) for _ in range(3)]
    greenpatch.sleep(0.02)
    server.close()
    _join(*waiters)
    assert errors == [zmq.ENOTSOCK] * 3


def test_term_wakes_waiters_with_context_terminated_and_returns_once_they_close() -> None:
    context = Context()
    sockets = [context.socket(zmq.PULL) for _ in range(2)]
    for number, sock in enumerate(sockets):
        sock.bind(f"inproc://term-{number}")
    outcomes = []

    def receive(sock: Any) -> None:
        try:
            sock.recv()
        except zmq.ContextTerminated:
            outcomes.append("terminated")
        finally:
            sock.close()

    waiters = [greenpatch.spawn(receive, sock) for sock in sockets]
    greenpatch.sleep(0.02)
    with greenpatch.Timeout(WAIT, AssertionError("term() did not return")):
        context.term()
    _join(*waiters)
    assert outcomes == ["terminated", "terminated"]
    assert context.closed


def test_destroy_wakes_waiters_on_its_sockets() -> None:
    context = Context()
    sock = context.socket(zmq.PULL)
    sock.bind("inproc://destroy")
    errors = []

    def receive() -> None:
        try:
            sock.recv()
        except zmq.ZMQError as exc:
            errors.append(exc.errno)

    waiter = greenpatch.spawn(receive)
    greenpatch.sleep(0.02)
    context.destroy(linger=0)
    _join(waiter)
    assert errors == [zmq.ENOTSOCK]


# -- many waiters on one socket -----------------------------------------------------------
def test_many_greenlets_receiving_on_one_socket_each_get_one_message(ctx: Any) -> None:
    server, client = _pair(ctx, zmq.PULL, zmq.PUSH)
    got: list[bytes] = []
    receivers = [greenpatch.spawn(lambda: got.append(server.recv())) for _ in range(50)]
    greenpatch.sleep(0.01)  # all of them waiting before anything arrives
    for number in range(50):
        client.send(b"%d" % number)
    _join(*receivers)
    assert sorted(got) == sorted(b"%d" % number for number in range(50))


def test_a_sender_and_a_receiver_waiting_on_one_socket_both_finish(ctx: Any) -> None:
    # One DEALER, one greenlet blocked sending (its queue full) and one blocked
    # receiving.  The peer then makes room and replies: both changes arrive as
    # edges on one ZMQ_FD, and whichever waiter reads ZMQ_EVENTS first must wake
    # the other.
    near = ctx.socket(zmq.DEALER)
    far = ctx.socket(zmq.DEALER)
    for sock in (near, far):
        sock.SNDHWM = sock.RCVHWM = 1
    far.bind("inproc://both-ways")
    near.connect("inproc://both-ways")
    queued = 0
    try:
        while True:
            near.send(b"fill", zmq.NOBLOCK)
            queued += 1
    except zmq.Again:
        pass
    results: list[Any] = []
    sender = greenpatch.spawn(lambda: results.append(near.send(b"late")))
    receiver = greenpatch.spawn(lambda: results.append(near.recv()))
    greenpatch.sleep(0.02)
    assert not results  # both are waiting
    for _ in range(queued):
        far.recv()
    far.send(b"reply")
    _join(sender, receiver)
    assert sorted(map(repr, results)) == sorted([repr(None), repr(b"reply")])
    assert far.recv() == b"late"


def test_a_call_that_reads_the_edge_another_waiter_needed_wakes_that_waiter(ctx: Any) -> None:
    # A sender waits for room.  The peer makes room (a command lands on
    # near's ZMQ_FD), and before the hub looks, a receive on the same socket
    # would block: its read of ZMQ_EVENTS drains the descriptor, so nothing
    # would ever wake the sender unless that read hands the news on.
    near = ctx.socket(zmq.DEALER)
    far = ctx.socket(zmq.DEALER)
    for sock in (near, far):
        sock.SNDHWM = sock.RCVHWM = 1
    far.bind("inproc://edge")
    near.connect("inproc://edge")
    queued = 0
    try:
        while True:
            near.send(b"fill", zmq.NOBLOCK)
            queued += 1
    except zmq.Again:
        pass
    sender = greenpatch.spawn(near.send, b"late")
    greenpatch.sleep(0.02)
    assert not sender.dead
    for _ in range(queued):
        far.recv()
    near.RCVTIMEO = 300
    with pytest.raises(zmq.Again):
        near.recv()  # nothing to receive: it waits 300 ms, the sender should not
    assert sender.dead and sender.successful()


@pytest.mark.parametrize("look", ["getsockopt", "attribute", "poll", "select"])
def test_looking_at_events_does_not_swallow_a_waiting_receivers_wake_up(
    ctx: Any, look: str
) -> None:
    server, client = _pair(ctx, zmq.PULL, zmq.PUSH)
    receiver = greenpatch.spawn(server.recv)
    greenpatch.sleep(0.01)
    client.send(b"one")
    # No switch since the send: the command is still pending on the descriptor,
    # and each of these reads ZMQ_EVENTS, draining it.
    if look == "getsockopt":
        assert server.getsockopt(zmq.EVENTS) & zmq.POLLIN
    elif look == "attribute":
        assert server.events & zmq.POLLIN
    elif look == "poll":
        assert server.poll(0) == zmq.POLLIN
    else:
        assert select([server], [], [], 0)[0] == [server]
    _join(receiver)
    assert receiver.value == b"one"


# -- the send/recv family ------------------------------------------------------------------
def test_every_send_and_recv_form_waits_cooperatively(ctx: Any, tmp_path: Path) -> None:
    address = f"ipc://{tmp_path}/forms.ipc"
    server, client = _pair(ctx, zmq.PAIR, zmq.PAIR, address)
    got: list[Any] = []

    def receive_all() -> None:
        got.append(server.recv_multipart())
        got.append(server.recv_string())
        got.append(server.recv_json())
        got.append(server.recv_pyobj())
        frame = server.recv(copy=False)
        got.append(frame.bytes)
        buffer = bytearray(10)
        got.append((server.recv_into(buffer), bytes(buffer[:5])))
        got.append(server.recv())

    receiver = greenpatch.spawn(receive_all)
    greenpatch.sleep(0.01)  # waiting before anything is sent
    client.send_multipart([b"a", b"b"])
    greenpatch.sleep(0.005)
    client.send_string("text")
    client.send_json({"key": [1, 2]})
    client.send_pyobj(("tuple", 3))
    big = b"z" * 100_000  # above copy_threshold: a real zero-copy send
    tracker = client.send(big, copy=False, track=True)
    client.send(b"hello")
    client.send(b"tail")
    _join(receiver)
    with greenpatch.Timeout(WAIT):
        while not tracker.done:
            greenpatch.sleep(0.005)
    assert got == [
        [b"a", b"b"],
        "text",
        {"key": [1, 2]},
        ("tuple", 3),
        big,
        (5, b"hello"),
        b"tail",
    ]


# -- Poller and select ---------------------------------------------------------------------
def test_poller_poll_waits_cooperatively_and_times_out(ctx: Any, ticker: Ticker) -> None:
    server, client = _pair(ctx, zmq.PULL, zmq.PUSH)
    poller = Poller()
    poller.register(server, zmq.POLLIN)
    before = ticker.ticks
    started = time.monotonic()
    assert poller.poll(100) == []
    assert 0.08 <= time.monotonic() - started < 2.0
    assert ticker.ticks - before >= 3
    greenpatch.spawn_later(0.05, client.send, b"ping")
    assert poller.poll(WAIT * 1000) == [(server, zmq.POLLIN)]
    assert server.recv() == b"ping"


def test_poller_wakes_for_a_plain_descriptor_and_reports_it(ctx: Any) -> None:
    server, _client = _pair(ctx, zmq.PULL, zmq.PUSH)
    reader, writer = stdlib_socket.socketpair()
    try:
        poller = Poller()
        poller.register(server, zmq.POLLIN)
        poller.register(reader.fileno(), zmq.POLLIN)
        greenpatch.spawn_later(0.05, writer.send, b"x")
        assert dict(poller.poll(None)) == {reader.fileno(): zmq.POLLIN}
    finally:
        reader.close()
        writer.close()


def test_socket_poll_and_select_wait_cooperatively(ctx: Any, ticker: Ticker) -> None:
    server, client = _pair(ctx, zmq.PULL, zmq.PUSH)
    before = ticker.ticks
    assert server.poll(50) == 0
    assert select([server], [], [], 0.05) == ([], [], [])
    assert ticker.ticks - before >= 3
    greenpatch.spawn_later(0.02, client.send, b"ping")
    assert select([server], [client], [], WAIT) == ([server], [client], []) or (
        select([server], [], [], WAIT) == ([server], [], [])
    )


def test_a_poller_and_a_receiver_on_one_socket_both_wake(ctx: Any) -> None:
    server, client = _pair(ctx, zmq.PULL, zmq.PUSH)
    seen: list[Any] = []
    poller = Poller()
    poller.register(server, zmq.POLLIN)
    polling = greenpatch.spawn(lambda: seen.append(poller.poll(WAIT * 1000)))
    receiving = greenpatch.spawn(lambda: seen.append(server.recv()))
    greenpatch.sleep(0.01)
    client.send(b"one")
    _join(receiving)
    client.send(b"two")  # the poller may have lost the first race: now it sees one
    _join(polling)
    assert b"one" in seen and [(server, zmq.POLLIN)] in seen


# -- classes --------------------------------------------------------------------------------
def test_context_makes_cooperative_sockets_and_has_its_own_instance(ctx: Any) -> None:
    sock = ctx.socket(zmq.PUSH)
    assert type(sock) is Socket
    assert isinstance(sock, zmq.Socket)
    plain = zmq.Context.instance()
    assert Context.instance() is Context.instance()
    assert type(Context.instance()) is Context and Context.instance() is not plain
    sock.close()


def test_the_classes_stay_generic_as_pyzmqs_are() -> None:
    # zmq.asyncio subclasses zmq.Socket[Future] -- this class, once patched.
    assert Socket[bytes] is not None
    assert Context[Socket[bytes]] is not None


def test_a_cooperative_shadow_of_a_plain_socket_waits_on_the_hub(ticker: Ticker) -> None:
    plain_ctx = zmq.Context()
    try:
        plain = plain_ctx.socket(zmq.PULL)
        plain.bind("inproc://shadow")
        pusher = plain_ctx.socket(zmq.PUSH)
        pusher.connect("inproc://shadow")
        for green in (Socket(plain), Socket.shadow(plain)):
            assert green.context is plain_ctx
            green.RCVTIMEO = 100
            before = ticker.ticks
            with pytest.raises(zmq.Again):
                green.recv()
            assert ticker.ticks - before >= 3
        greenpatch.spawn_later(0.02, pusher.send, b"x")
        assert Socket(plain).recv() == b"x"
    finally:
        plain_ctx.destroy(linger=0)


def test_the_module_is_a_green_module_for_zmq() -> None:
    from greenpatch.plugins import _zmq
    from greenpatch.plugins import zmq as plugin

    assert _zmq.__target__ == "zmq"
    assert set(_zmq.__implements__) == set(plugin.SPEC.names or ())
    assert plugin.SPEC.on_import and plugin.SPEC.green == _zmq.__name__
    assert os.path.basename(_zmq.__file__ or "") == "_zmq.py"


# -- devices: proxy, proxy_steerable, device, monitored_queue ------------------------------
from greenpatch.zmq import device, monitored_queue, proxy, proxy_steerable  # noqa: E402


def test_a_proxy_in_a_greenlet_serves_clients_and_workers_while_a_ticker_ticks(
    ctx: Any, ticker: Ticker
) -> None:
    frontend, backend, capture_in = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER), None
    frontend.bind("inproc://front")
    backend.bind("inproc://back")
    capture = ctx.socket(zmq.PUSH)
    capture.bind("inproc://capture")
    capture_in = ctx.socket(zmq.PULL)
    capture_in.connect("inproc://capture")
    device_glet = greenpatch.spawn(proxy, frontend, backend, capture)

    def work() -> None:
        worker = ctx.socket(zmq.REP)
        worker.connect("inproc://back")
        while True:
            request = worker.recv_multipart()
            greenpatch.sleep(0.02)  # the proxy and the ticker run meanwhile
            worker.send_multipart([b"done", *request])

    def ask(number: int) -> list[bytes]:
        client = ctx.socket(zmq.REQ)
        client.connect("inproc://front")
        client.send_multipart([b"job", b"%d" % number])
        reply: list[bytes] = client.recv_multipart()
        client.close()
        return reply

    workers = [greenpatch.spawn(work) for _ in range(3)]
    clients = [greenpatch.spawn(ask, number) for number in range(6)]
    _join(*clients)
    assert sorted(glet.value for glet in clients) == sorted(
        [b"done", b"job", b"%d" % n] for n in range(6)
    )
    assert ticker.ticks >= 5
    # capture got a copy of every frame both ways: 6 requests and 6 replies, each
    # with the ROUTER's identity and REQ's empty delimiter in front.
    copies = []
    while capture_in.poll(0):
        copies.append(capture_in.recv_multipart())
    assert len(copies) == 12
    requests = [copy[1:] for copy in copies if len(copy) == 4]  # [identity, b"", job, n]
    replies = [copy[1:] for copy in copies if len(copy) == 5]  # [identity, b"", done, job, n]
    assert sorted(requests) == [[b"", b"job", b"%d" % n] for n in range(6)]
    assert sorted(replies) == [[b"", b"done", b"job", b"%d" % n] for n in range(6)]
    for glet in [device_glet, *workers]:
        glet.kill()


def test_a_proxy_moves_a_multipart_message_whole_and_device_is_its_alias(ctx: Any) -> None:
    for index, run in enumerate((proxy, lambda front, back: device(zmq.QUEUE, front, back))):
        front, back = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
        front.bind(f"inproc://whole-in-{index}")
        back.bind(f"inproc://whole-out-{index}")
        glet = greenpatch.spawn(run, front, back)
        pusher, puller = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
        pusher.connect(f"inproc://whole-in-{index}")
        puller.connect(f"inproc://whole-out-{index}")
        pusher.send_multipart([b"a", b"", b"c" * 100_000])
        assert puller.recv_multipart() == [b"a", b"", b"c" * 100_000]
        glet.kill()
        for sock in (front, back, pusher, puller):
            sock.close(linger=0)


def test_proxy_steerable_pauses_resumes_counts_and_returns_0_on_terminate(ctx: Any) -> None:
    front, back, control = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH), ctx.socket(zmq.REP)
    front.bind("inproc://steer-in")
    back.bind("inproc://steer-out")
    control.bind("inproc://steer-ctl")
    glet = greenpatch.spawn(proxy_steerable, front, back, None, control)
    pusher, puller, steer = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL), ctx.socket(zmq.REQ)
    pusher.connect("inproc://steer-in")
    puller.connect("inproc://steer-out")
    steer.connect("inproc://steer-ctl")

    def command(word: bytes) -> list[bytes]:
        steer.send(word)
        reply: list[bytes] = steer.recv_multipart()
        return reply

    pusher.send_multipart([b"ab", b"c"])
    assert puller.recv_multipart() == [b"ab", b"c"]
    assert command(b"PAUSE") == [b""]
    pusher.send(b"held")
    assert not puller.poll(100)  # paused: it stays queued
    assert command(b"RESUME") == [b""]
    assert puller.recv() == b"held"
    assert command(b"NONSENSE") == [b""]  # as libzmq 4.3.5: ignored, answered
    stats = [int.from_bytes(frame, sys.byteorder) for frame in command(b"STATISTICS")]
    # frames and bytes in/out of the frontend, then of the backend (per frame, as libzmq)
    assert stats == [3, 7, 0, 0, 0, 0, 3, 7]
    assert command(b"TERMINATE") == [b""]
    _join(glet)
    assert glet.value == 0


def test_a_proxy_raises_context_terminated_when_its_context_ends() -> None:
    context = Context()
    front, back = context.socket(zmq.PULL), context.socket(zmq.PUSH)
    front.bind("inproc://term-in")
    back.bind("inproc://term-out")
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            proxy(front, back)
        except zmq.ZMQError as exc:
            outcome.append(exc)
            front.close()
            back.close()

    glet = greenpatch.spawn(run)
    greenpatch.sleep(0.01)
    context.term()  # returns once the proxy's greenlet saw ETERM and closed its sockets
    _join(glet)
    assert isinstance(outcome[0], zmq.ContextTerminated)


def test_a_proxy_raises_enotsock_when_its_socket_is_closed(ctx: Any) -> None:
    front, back = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    front.bind("inproc://closed-in")
    back.bind("inproc://closed-out")
    glet = greenpatch.spawn(proxy, front, back)
    greenpatch.sleep(0.01)
    front.close()
    with greenpatch.Timeout(WAIT, AssertionError("the proxy did not end")):
        with pytest.raises(zmq.ZMQError) as raised:
            glet.get()
    assert raised.value.errno == zmq.ENOTSOCK


def test_monitored_queue_prefixes_copies_and_swaps_router_identities(ctx: Any) -> None:
    ins, outs, mon = ctx.socket(zmq.ROUTER), ctx.socket(zmq.ROUTER), ctx.socket(zmq.PUB)
    ins.bind("inproc://mq-in")
    outs.bind("inproc://mq-out")
    mon.bind("inproc://mq-mon")
    watcher = ctx.socket(zmq.SUB)
    watcher.subscribe(b"")
    watcher.connect("inproc://mq-mon")
    glet = greenpatch.spawn(monitored_queue, ins, outs, mon, b"IN", b"OUT")
    client = ctx.socket(zmq.DEALER)
    client.identity = b"client"
    client.connect("inproc://mq-in")
    server = ctx.socket(zmq.DEALER)
    server.identity = b"server"
    server.connect("inproc://mq-out")
    # Until both ROUTERs have the peers' routes, messages to them are dropped: retry.
    while True:
        client.send_multipart([b"server", b"ping"])
        if server.poll(50):
            break
    # in: [client, server, ping] from the ROUTER; swapped, it routes to the server.
    assert server.recv_multipart() == [b"client", b"ping"]
    server.send_multipart([b"client", b"pong"])
    assert client.recv_multipart() == [b"server", b"pong"]
    seen = []
    while watcher.poll(1000):
        seen.append(watcher.recv_multipart())
        if seen[-1][0] == b"OUT":
            break
    assert seen[-2:] == [
        [b"IN", b"server", b"client", b"ping"],
        [b"OUT", b"client", b"server", b"pong"],
    ]
    glet.kill()


def test_greenpatch_zmq_is_a_drop_in_for_pyzmqs_namespace() -> None:
    import greenpatch.zmq as gz

    # what ``import zmq.green as zmq`` code uses: pyzmq's names, cooperative classes
    assert gz.REP == zmq.REP and gz.Frame is zmq.Frame and gz.Again is zmq.Again
    assert gz.ZMQError is zmq.ZMQError and gz.zmq_version() == zmq.zmq_version()
    assert gz.Context is Context and gz.Socket is Socket and gz.Poller is Poller
    assert gz.proxy is proxy and gz.device is device and gz.select is select
    assert set(zmq.__all__) <= set(gz.__all__)
    assert gz.COPY_THRESHOLD == zmq.COPY_THRESHOLD  # outside __all__: through __getattr__
    with pytest.raises(AttributeError):
        gz.no_such_name  # noqa: B018
