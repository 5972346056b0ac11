"""A WebSocket echo server through pywsgi's handler_class (gevent-websocket)."""

from gevent import monkey

monkey.patch_all()

import base64  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402

from gevent import pywsgi  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402


def app(environ, start_response):
    ws = environ["wsgi.websocket"]
    ws.send(ws.receive().upper())
    return []


server = pywsgi.WSGIServer(("127.0.0.1", 0), app, handler_class=WebSocketHandler, log=None)
server.start()
connection = socket.create_connection(("127.0.0.1", server.server_port))
key = base64.b64encode(os.urandom(16)).decode()
connection.sendall(
    (
        "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
)
head = b""
while b"\r\n\r\n" not in head:
    head += connection.recv(1)
print(head.split(b"\r\n")[0].decode())
mask = os.urandom(4)
payload = b"hello"
connection.sendall(
    bytes([0x81, 0x80 | len(payload)])
    + mask
    + bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
)
frame = connection.recv(2)
print(connection.recv(frame[1] & 0x7F).decode())
connection.close()
server.stop()

EXPECTED = """\
HTTP/1.1 101 Switching Protocols
HELLO
"""
