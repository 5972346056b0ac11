"""Greenlets blocked in a cooperative select() let another greenlet work."""

import gevent
from gevent import select

ended = []


def poller(name):
    print(f"{name}: polling")
    select.select([], [], [], 0.05)
    ended.append(name)


def worker():
    print("worker: busy while the pollers wait")


gevent.joinall([gevent.spawn(poller, "p1"), gevent.spawn(poller, "p2"), gevent.spawn(worker)])
print("ended:", sorted(ended))

EXPECTED = """\
p1: polling
p2: polling
worker: busy while the pollers wait
ended: ['p1', 'p2']
"""
