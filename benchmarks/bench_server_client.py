"""The echo load generator: ``bench_server_client.py PORT CONNECTIONS SECONDS``.

Plain sockets and one ``selectors`` loop (no greenpatch, no asyncio), so that it
is the same client for every server.  Each connection sends a 1 KiB message and
waits until all of it came back before sending the next.  Prints
``{"round_trips_per_s": N}``.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time

MESSAGE = b"x" * 1024


def main() -> None:
    port, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    selector = selectors.DefaultSelector()
    pending: dict[socket.socket, int] = {}
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        pending[sock] = len(MESSAGE)
        sock.send(MESSAGE)
    round_trips = 0
    started = time.perf_counter()
    deadline = started + seconds
    select = selector.select
    size = len(MESSAGE)
    while True:
        for key, _ in select(0.5):
            sock = key.fileobj
            data = sock.recv(65536)  # type: ignore[union-attr]
            if not data:
                raise SystemExit("the server closed a connection")
            left = pending[sock] - len(data)  # type: ignore[index]
            if left <= 0:
                round_trips += 1
                left = size
                sock.send(MESSAGE)  # type: ignore[union-attr]
            pending[sock] = left  # type: ignore[index]
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - started
    print(json.dumps({"round_trips_per_s": round_trips / elapsed}))


if __name__ == "__main__":
    main()
