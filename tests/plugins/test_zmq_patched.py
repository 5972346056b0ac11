"""The zmq plugin under ``patch_all()``: ``import zmq`` gives cooperative classes.

Each script runs in a fresh interpreter (patching is for the whole process),
calls ``patch_all()`` first and arms a ``signal.alarm``, so that a deadlock --
what pyzmq's own classes do here -- fails the test instead of hanging it.
The docs' examples run here too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.patcher._interpreter import run_script

pytest.importorskip("zmq")

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"

PRELUDE = """
import signal
signal.alarm(30)  # a deadlock kills the process: the test fails instead of hanging
import greenpatch
greenpatch.patch_all({flags})
"""


def _run(body: str, flags: str = "") -> str:
    return run_script(PRELUDE.format(flags=flags) + body)


def test_the_guides_req_rep_pair_in_two_threads_runs_while_a_ticker_ticks() -> None:
    out = _run(
        """
import threading, time
import zmq
context = zmq.Context()
server = context.socket(zmq.REP)
server.bind("tcp://127.0.0.1:*")
address = server.getsockopt_string(zmq.LAST_ENDPOINT)
ticks = []
stop = threading.Event()

def tick():
    while not stop.is_set():
        ticks.append(time.monotonic())
        time.sleep(0.005)

def serve():
    for _ in range(3):
        message = server.recv()
        time.sleep(0.05)
        server.send(b"World " + message)

def ask():
    client = context.socket(zmq.REQ)
    client.connect(address)
    for number in range(3):
        client.send(b"%d" % number)
        print(client.recv().decode())
    client.close()

threads = [threading.Thread(target=f) for f in (tick, serve, ask)]
for thread in threads:
    thread.start()
threads[2].join()
threads[1].join()
stop.set()
threads[0].join()
server.close()
context.term()
print(len(ticks) >= 15, type(server).__module__)
"""
    )
    assert out.splitlines() == [
        "World 0",
        "World 1",
        "World 2",
        "True greenpatch.plugins._zmq",
    ]


def test_import_after_patch_all_gives_the_cooperative_classes() -> None:
    out = _run(
        """
from greenpatch.patcher.api import registry
print(registry.is_armed("zmq"))
import zmq
import greenpatch.zmq
print(registry.is_armed("zmq"), greenpatch.is_patched("zmq"))
print(zmq.Context is greenpatch.zmq.Context, zmq.Socket is greenpatch.zmq.Socket,
      zmq.Poller is greenpatch.zmq.Poller, zmq.select is greenpatch.zmq.select)
context = zmq.Context.instance()
sock = context.socket(zmq.PAIR)
print(type(context).__name__, type(sock) is greenpatch.zmq.Socket, sock.poll(10))
sock.close()
context.term()
"""
    )
    assert out.splitlines() == ["True", "False True", "True True True True", "Context True 0"]


def test_without_the_plugin_zmq_keeps_pyzmqs_own_classes() -> None:
    out = _run(
        """
import zmq, zmq.sugar
print(greenpatch.is_patched("zmq"))
print(zmq.Context is zmq.sugar.Context, zmq.Socket is zmq.sugar.Socket,
      zmq.Poller is zmq.sugar.Poller, zmq.select is zmq.sugar.select)
""",
        flags="zmq=False",
    )
    assert out.splitlines() == ["False", "True True True True"]


def test_zmq_imported_before_patch_all_is_patched_at_once() -> None:
    script = """
import signal
signal.alarm(30)
import zmq
plain = zmq.Context
import greenpatch
greenpatch.patch_all()
import greenpatch.zmq
print(plain is not zmq.Context, zmq.Context is greenpatch.zmq.Context)
"""
    assert run_script(script) == "True True"


def test_a_thread_device_under_patch_all_forwards_while_a_ticker_ticks() -> None:
    out = _run(
        """
import threading, time
import zmq, zmq.devices
import greenpatch.zmq
dev = zmq.devices.ThreadDevice(zmq.QUEUE, zmq.ROUTER, zmq.DEALER)
front = dev.bind_in_to_random_port("tcp://127.0.0.1")
back = dev.bind_out_to_random_port("tcp://127.0.0.1")
dev.start()
context = zmq.Context.instance()
ticks = []
stop = threading.Event()

def tick():
    while not stop.is_set():
        ticks.append(1)
        time.sleep(0.005)

def serve():
    worker = context.socket(zmq.REP)
    worker.connect(f"tcp://127.0.0.1:{back}")
    for _ in range(3):
        request = worker.recv()
        time.sleep(0.05)
        worker.send(request.upper())
    worker.close()

threads = [threading.Thread(target=f) for f in (tick, serve)]
for thread in threads:
    thread.start()
client = context.socket(zmq.REQ)
client.connect(f"tcp://127.0.0.1:{front}")
for word in (b"a", b"b", b"c"):
    client.send(word)
    print(client.recv().decode())
client.close()
threads[1].join()
stop.set()
threads[0].join()
context.term()  # ends the device: its proxy gets ContextTerminated, which it silences
dev.join(10)
print(dev.done, len(ticks) >= 10, zmq.proxy is greenpatch.zmq.proxy)
"""
    )
    assert out.splitlines() == ["A", "B", "C", "True True True"]


def test_zmq_devices_imported_before_patch_all_gets_the_cooperative_devices() -> None:
    script = """
import signal
signal.alarm(30)
import zmq.devices
from zmq.devices import basedevice, monitoredqueue, monitoredqueuedevice
plain = basedevice.proxy
import greenpatch
greenpatch.patch_all()
import greenpatch.zmq as gz
print(plain is not gz.proxy, zmq.proxy is gz.proxy, zmq.device is gz.device,
      zmq.proxy_steerable is gz.proxy_steerable, basedevice.proxy is gz.proxy,
      zmq.devices.proxy is gz.proxy, zmq.devices.monitored_queue is gz.monitored_queue,
      monitoredqueue.monitored_queue is gz.monitored_queue,
      monitoredqueuedevice.monitored_queue is gz.monitored_queue)
from greenpatch.patcher.api import registry
registry.unpatch("zmq_basedevice")
print(basedevice.proxy is plain)
"""
    assert run_script(script).splitlines() == [" ".join(["True"] * 9), "True"]


def test_zmq_asyncio_builds_on_the_cooperative_classes_and_works() -> None:
    out = _run(
        """
import asyncio
import zmq, zmq.asyncio
import greenpatch.zmq

async def main():
    context = zmq.asyncio.Context()
    server = context.socket(zmq.PAIR)
    port = server.bind_to_random_port("tcp://127.0.0.1")
    client = context.socket(zmq.PAIR)
    client.connect(f"tcp://127.0.0.1:{port}")
    await client.send(b"hi")
    print((await server.recv()).decode())
    client.close()
    server.close()
    context.term()

asyncio.run(main())
print(issubclass(zmq.asyncio.Socket, greenpatch.zmq.Socket))
"""
    )
    assert out.splitlines() == ["hi", "True"]


def test_a_tracked_zero_copy_send_completes_under_patching() -> None:
    # pyzmq learns that libzmq is done with a zero-copy buffer through its
    # garbage-collector thread -- a green thread here, receiving on a socket
    # of the patched zmq.Context: it must not block the hub.
    out = _run(
        """
import zmq
context = zmq.Context()
pull = context.socket(zmq.PULL)
pull.bind("inproc://big")
push = context.socket(zmq.PUSH)
push.connect("inproc://big")
tracker = push.send(b"x" * 1_000_000, copy=False, track=True)
print(len(pull.recv()))
tracker.wait(10)
print(tracker.done)
push.close()
pull.close()
context.term()
"""
    )
    assert out.splitlines() == ["1000000", "True"]


def test_term_in_one_thread_stops_a_thread_blocked_in_recv() -> None:
    # pyzmq's documented pattern for threads: term() makes the blocked recv
    # raise ContextTerminated, the thread closes its socket, term() returns.
    out = _run(
        """
import threading, time
import zmq
context = zmq.Context()
ready = threading.Event()
outcome = []

def receive():
    sock = context.socket(zmq.PULL)
    sock.bind("inproc://work")
    ready.set()
    try:
        sock.recv()
    except zmq.ContextTerminated:
        outcome.append("terminated")
    finally:
        sock.close()

thread = threading.Thread(target=receive)
thread.start()
ready.wait()
time.sleep(0.05)
context.term()
thread.join()
print(outcome, context.closed)
"""
    )
    assert out == "['terminated'] True"


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        ("zmq_req_rep.py", "5 requests in"),
        ("zmq_pub_sub.py", "fast subscriber got 50 updates, slow subscriber got 50"),
        ("zmq_push_pull.py", "40 results from 10 workers"),
    ],
)
def test_the_docs_examples_run_and_overlap(example: str, expected: str) -> None:
    out = run_script("", argv=[sys.executable, "-W", "error", str(EXAMPLES / example)])
    assert expected in out
    last = out.splitlines()[-1]
    assert "ticker ticked" in last
    ticks = int(last.split("ticked ")[1].split()[0])
    assert ticks >= 5, out  # it kept ticking while the sockets waited
