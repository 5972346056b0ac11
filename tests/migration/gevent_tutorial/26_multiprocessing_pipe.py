"""Greenlets wait on multiprocessing pipes with wait_read/wait_write."""

from multiprocessing import Pipe, Process

import gevent
from gevent.socket import wait_read, wait_write

COUNT = 4


def relay(inbound, outbound):
    for n in range(COUNT):
        outbound.send(f"{inbound.recv()} in {n}")


def put_messages(connection):
    for _ in range(COUNT):
        wait_write(connection.fileno())
        connection.send("hi")


def get_messages(connection):
    for _ in range(COUNT):
        wait_read(connection.fileno())
        print(connection.recv())


if __name__ == "__main__":
    a, b = Pipe()
    c, d = Pipe()
    process = Process(target=relay, args=(b, c))
    process.start()
    done = gevent.joinall(
        [gevent.spawn(get_messages, d), gevent.spawn(put_messages, a)], timeout=10
    )
    process.join()
    print("both finished:", len(done) == 2, "child exit:", process.exitcode)

EXPECTED = """\
hi in 0
hi in 1
hi in 2
hi in 3
both finished: True child exit: 0
"""
