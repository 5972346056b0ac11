"""A TCP StreamServer that greets each client and counts to four."""

import gevent
from gevent import socket
from gevent.server import StreamServer


def handle(sock, address):
    sock.sendall(b"Hello from a stream server!\n")
    for n in range(4):
        sock.sendall(f"{n}\n".encode())
    sock.close()


server = StreamServer(("127.0.0.1", 0), handle, 50)  # the third argument is the backlog
server.start()
print("backlog:", server.backlog)


def client():
    connection = socket.create_connection(("127.0.0.1", server.server_port))
    received = b""
    while chunk := connection.recv(1024):
        received += chunk
    connection.close()
    return received.decode()


replies = [job.get() for job in [gevent.spawn(client) for _ in range(2)]]
print(replies[0], end="")
print("both clients served alike:", replies[0] == replies[1])
server.stop()

EXPECTED = """\
backlog: 50
Hello from a stream server!
0
1
2
3
both clients served alike: True
"""
