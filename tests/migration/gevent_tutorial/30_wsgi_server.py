"""A WSGI application on pywsgi's server, fetched over a cooperative socket."""

from gevent import socket
from gevent.pywsgi import WSGIServer


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/html")])
    return [b"<b>hello world</b>"]


server = WSGIServer(("127.0.0.1", 0), application, log=None)
server.start()
connection = socket.create_connection(("127.0.0.1", server.server_port))
connection.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
response = b""
while chunk := connection.recv(4096):
    response += chunk
connection.close()
head, _, body = response.partition(b"\r\n\r\n")
print("status:", head.split(b"\r\n")[0].split(b" ", 1)[1].decode())
print("body:", body.decode())
server.stop()

EXPECTED = """\
status: 200 OK
body: <b>hello world</b>
"""
