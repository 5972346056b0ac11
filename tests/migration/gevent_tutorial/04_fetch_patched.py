"""Patched urllib fetches from a loopback server, one by one and concurrently."""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import urllib.request  # noqa: E402

import gevent  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402


def clock(environ, start_response):
    gevent.sleep(0.01)  # a slow service: concurrent fetches overlap here
    body = json.dumps({"path": environ["PATH_INFO"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


server = WSGIServer(("127.0.0.1", 0), clock, log=None)
server.start()
base = f"http://127.0.0.1:{server.server_port}"


def fetch(number):
    with urllib.request.urlopen(f"{base}/item/{number}") as response:
        return json.loads(response.read())["path"]


print("one by one:")
for number in range(1, 4):
    print(" ", fetch(number))
print("concurrently:")
jobs = [gevent.spawn(fetch, number) for number in range(1, 4)]
gevent.joinall(jobs, raise_error=True)
print(" ", sorted(job.value for job in jobs))
server.stop()

EXPECTED = """\
one by one:
  /item/1
  /item/2
  /item/3
concurrently:
  ['/item/1', '/item/2', '/item/3']
"""
