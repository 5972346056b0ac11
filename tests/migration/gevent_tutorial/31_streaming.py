"""A WSGI application that streams its body in pieces."""

from gevent import monkey

monkey.patch_all()

import http.client  # noqa: E402

import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    for word in ("streamed ", "in ", "pieces"):
        yield word.encode()
        gevent.sleep(0.005)


server = WSGIServer(("127.0.0.1", 0), application, log=None)
server.start()
connection = http.client.HTTPConnection("127.0.0.1", server.server_port)
connection.request("GET", "/")
response = connection.getresponse()
print("status:", response.status)
print("chunked:", response.getheader("Transfer-Encoding"))
print("body:", response.read().decode())
connection.close()
server.stop()

EXPECTED = """\
status: 200
chunked: chunked
body: streamed in pieces
"""
