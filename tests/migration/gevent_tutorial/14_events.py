"""An Event wakes every greenlet waiting on it."""

import gevent
from gevent.event import Event

ready = Event()


def setter():
    print("setter: hold on")
    gevent.sleep(0.01)
    print("setter: go")
    ready.set()


def waiter(name):
    print(f"{name}: waiting")
    ready.wait()
    print(f"{name}: done")


gevent.joinall([gevent.spawn(setter), gevent.spawn(waiter, "b"), gevent.spawn(waiter, "c")])

EXPECTED = """\
setter: hold on
b: waiting
c: waiting
setter: go
b: done
c: done
"""
