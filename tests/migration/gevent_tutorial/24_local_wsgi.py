"""A local subclass holds per-request state in a WSGI application."""

from gevent import monkey

monkey.patch_all()

import urllib.request  # noqa: E402

import gevent  # noqa: E402
from gevent.local import local  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402


class RequestState(local):
    def __init__(self):
        self.path = None


state = RequestState()


def app(environ, start_response):
    state.path = environ["PATH_INFO"]
    gevent.sleep(0.01)  # other requests run here and set their own path
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [state.path.encode()]


server = WSGIServer(("127.0.0.1", 0), app, log=None)
server.start()


def fetch(path):
    url = f"http://127.0.0.1:{server.server_port}{path}"
    with urllib.request.urlopen(url) as response:
        return response.read().decode()


jobs = [gevent.spawn(fetch, path) for path in ("/a", "/b", "/c")]
gevent.joinall(jobs, raise_error=True)
print("answers:", [job.value for job in jobs])
print("main greenlet's state untouched:", state.path)
server.stop()

EXPECTED = """\
answers: ['/a', '/b', '/c']
main greenlet's state untouched: None
"""
