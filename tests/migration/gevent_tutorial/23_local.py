"""Greenlet-local data: each greenlet sees its own attributes."""

import gevent
from gevent.local import local

stash = local()


def f1():
    stash.x = 1
    print("f1 sees x =", stash.x)


def f2():
    stash.y = 2
    print("f2 sees y =", stash.y)
    try:
        print(stash.x)
    except AttributeError:
        print("x is not local to f2")


gevent.joinall([gevent.spawn(f1), gevent.spawn(f2)])

# One greenlet after another (they may run on the same worker underneath):
first = gevent.spawn(setattr, stash, "z", "first")
first.join()
second = gevent.spawn(lambda: getattr(stash, "z", "unset"))
print("a later greenlet sees:", second.get())

EXPECTED = """\
f1 sees x = 1
f2 sees y = 2
x is not local to f2
a later greenlet sees: unset
"""
