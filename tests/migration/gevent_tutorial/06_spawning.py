"""The ways to start a greenlet: Greenlet(), spawn(), Greenlet.spawn(), spawn_raw()."""

import gevent
from gevent import Greenlet


def say(message, count):
    for _ in range(count):
        gevent.sleep(0)
    print(message)


made = Greenlet(say, "made, then started", 1)
made.start()
spawned = gevent.spawn(say, "spawned", 1)
anonymous = gevent.spawn(lambda: print("a lambda"))
classic = Greenlet.spawn(say, "Greenlet.spawn", 2)
gevent.joinall([made, spawned, anonymous, classic])

raw_done = []
gevent.spawn_raw(raw_done.append, "raw")
gevent.idle()  # returns once everything ready has run
print("spawn_raw ran:", raw_done)

EXPECTED = """\
a lambda
made, then started
spawned
Greenlet.spawn
spawn_raw ran: ['raw']
"""
