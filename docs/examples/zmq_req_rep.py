"""ZeroMQ's request/reply pair in two threads of one process, patched.

    python docs/examples/zmq_req_rep.py

``patch_all()`` makes the threads greenlets and, once ``zmq`` is imported, its
sockets cooperative: the client's ``recv`` waits on the hub while the server
works, and a third thread keeps ticking throughout.  Without the plugin
(``greenpatch.patch_all(zmq=False)``) the server's first ``recv`` would hold
the only OS thread and the client would never send.
"""

from __future__ import annotations

import greenpatch

greenpatch.patch_all()

import threading  # noqa: E402  (after patch_all: these are green)
import time  # noqa: E402

import zmq  # noqa: E402  (the zmq plugin applies here)

REQUESTS = 5
WORK = 0.1  # seconds the server spends on each request


def serve(socket: zmq.Socket) -> None:
    for _ in range(REQUESTS):
        request = socket.recv()
        time.sleep(WORK)  # cooperative: the ticker runs meanwhile
        socket.send(b"World (" + request + b")")


def main() -> None:
    context = zmq.Context()
    server = context.socket(zmq.REP)
    server.bind("tcp://127.0.0.1:*")
    client = context.socket(zmq.REQ)
    client.connect(server.getsockopt_string(zmq.LAST_ENDPOINT))

    ticks = 0
    done = threading.Event()

    def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.01)

    ticker = threading.Thread(target=tick)
    ticker.start()
    server_thread = threading.Thread(target=serve, args=(server,))
    server_thread.start()
    started = time.perf_counter()
    for number in range(REQUESTS):
        client.send(b"Hello %d" % number)
        print("client got", client.recv().decode())
    elapsed = time.perf_counter() - started
    done.set()
    server_thread.join()
    ticker.join()
    print(f"{REQUESTS} requests in {elapsed:.2f} s; the ticker ticked {ticks} times meanwhile")
    client.close()
    server.close()
    context.term()


if __name__ == "__main__":
    main()
