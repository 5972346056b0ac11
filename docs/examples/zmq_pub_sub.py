"""PUB/SUB with a fast and a slow subscriber, each in its own thread, patched.

    python docs/examples/zmq_pub_sub.py

The publisher sends 50 updates on two topics; each subscriber takes only its
topic, the slow one spending 10 ms on each update.  Every thread is a
greenlet after ``patch_all()``, and every ``recv`` waits on the hub, so the
subscribers, the publisher and a ticker all make progress together.
"""

from __future__ import annotations

import greenpatch

greenpatch.patch_all()

import threading  # noqa: E402
import time  # noqa: E402

import zmq  # noqa: E402

UPDATES = 50


def subscribe(context: zmq.Context, address: str, topic: bytes, delay: float, got: dict) -> None:
    socket = context.socket(zmq.SUB)
    socket.connect(address)
    socket.subscribe(topic)
    count = 0
    while True:
        _topic, body = socket.recv_multipart()
        if body == b"end":
            break
        count += 1
        time.sleep(delay)
    got[topic.decode()] = count
    socket.close()


def main() -> None:
    context = zmq.Context()
    # XPUB: a PUB that also hears subscriptions, so the publisher can wait for
    # both subscribers instead of sleeping (PUB drops what nobody subscribed to yet).
    publisher = context.socket(zmq.XPUB)
    publisher.bind("tcp://127.0.0.1:*")
    address = publisher.getsockopt_string(zmq.LAST_ENDPOINT)

    got: dict = {}
    subscribers = [
        threading.Thread(target=subscribe, args=(context, address, b"fast", 0.0, got)),
        threading.Thread(target=subscribe, args=(context, address, b"slow", 0.01, got)),
    ]
    for thread in subscribers:
        thread.start()
    for _ in subscribers:
        publisher.recv()  # b"\x01" + topic: one subscription arrived

    ticks = 0
    done = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.01)

    ticker = threading.Thread(target=tick)
    ticker.start()
    started = time.perf_counter()
    for number in range(UPDATES):
        for topic in (b"fast", b"slow"):
            publisher.send_multipart([topic, b"update %d" % number])
    for topic in (b"fast", b"slow"):
        publisher.send_multipart([topic, b"end"])
    for thread in subscribers:
        thread.join()
    elapsed = time.perf_counter() - started
    done.set()
    ticker.join()
    print(f"fast subscriber got {got['fast']} updates, slow subscriber got {got['slow']}")
    print(f"in {elapsed:.2f} s; the ticker ticked {ticks} times meanwhile")
    publisher.close()
    context.term()


if __name__ == "__main__":
    main()
