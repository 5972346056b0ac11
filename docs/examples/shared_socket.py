"""Several threads sharing one socket, made greenlets by patch_all().

    python docs/examples/shared_socket.py

Five threads accept() on one listener and each serves one client; then two
threads read one socket and each gets the message sent in its turn.
"""

import greenpatch

greenpatch.patch_all()

import socket  # noqa: E402
import threading  # noqa: E402


def accept_pool() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    served = []

    def serve_one(worker: int) -> None:
        conn, _ = listener.accept()
        with conn:
            served.append((worker, conn.recv(100)))

    threads = [threading.Thread(target=serve_one, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for i in range(5):
        with socket.create_connection(listener.getsockname()) as client:
            client.sendall(b"hello %d" % i)
    for thread in threads:
        thread.join()
    listener.close()
    print("served:", sorted(data for _, data in served))


def two_readers() -> None:
    a, b = socket.socketpair()
    got = []
    readers = [threading.Thread(target=lambda: got.append(a.recv(100))) for _ in range(2)]
    for reader in readers:
        reader.start()
    greenpatch.sleep(0.05)  # for the demo: let both readers block first
    b.sendall(b"first")
    greenpatch.sleep(0.05)
    b.sendall(b"second")
    for reader in readers:
        reader.join()
    print("read:", got)
    a.close()
    b.close()


if __name__ == "__main__":
    accept_pool()
    two_readers()
