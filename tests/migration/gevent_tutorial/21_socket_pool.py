"""A pool of connection handlers that refuses work when full."""

import gevent
from gevent import socket
from gevent.pool import Pool


class SocketPool:
    def __init__(self, size):
        self.pool = Pool(size)

    def listen(self, sock):
        while True:
            data = sock.recv(1024)
            if not data:
                return
            print("got", data.decode())

    def add_handler(self, sock):
        if self.pool.full():
            raise RuntimeError("at maximum pool size")
        self.pool.spawn(self.listen, sock)

    def shutdown(self):
        self.pool.kill()


handlers = SocketPool(2)
pairs = [socket.socketpair() for _ in range(3)]
handlers.add_handler(pairs[0][0])
handlers.add_handler(pairs[1][0])
try:
    handlers.add_handler(pairs[2][0])
except RuntimeError as exc:
    print("refused:", exc)
pairs[0][1].sendall(b"one")
gevent.sleep(0.01)
pairs[1][1].sendall(b"two")
gevent.sleep(0.01)
handlers.shutdown()
print("running after shutdown:", len(handlers.pool))
for pair in pairs:
    for end in pair:
        end.close()

EXPECTED = """\
refused: at maximum pool size
got one
got two
running after shutdown: 0
"""
