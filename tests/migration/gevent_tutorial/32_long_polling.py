"""Long polling: the endpoint waits on a queue fed by a producer greenlet."""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import urllib.request  # noqa: E402

import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from gevent.queue import Empty, Queue  # noqa: E402

source = Queue()


def producer():
    for n in range(3):
        gevent.sleep(0.01)
        source.put_nowait({"tick": n})


def endpoint(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    while True:
        try:
            item = source.get(timeout=0.5)
        except Empty:
            return
        yield (json.dumps(item) + "\n").encode()
        if item["tick"] == 2:
            return


server = WSGIServer(("127.0.0.1", 0), endpoint, log=None)
server.start()
gevent.spawn(producer)
with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/poll") as response:
    for line in response:
        print(line.decode().strip())
server.stop()

EXPECTED = """\
{"tick": 0}
{"tick": 1}
{"tick": 2}
"""
