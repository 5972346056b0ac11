"""A Timeout object passed as timeout= to join, get, wait and with_timeout."""

import gevent
from gevent import Timeout
from gevent.event import AsyncResult, Event


def wait():
    gevent.sleep(10)


thread1 = gevent.spawn(wait)
thread1.join(timeout=Timeout.start_new(0.02))  # join returns quietly
print("thread 1 finished:", thread1.ready())

thread2 = gevent.spawn(wait)
timer = Timeout.start_new(0.02)
try:
    thread2.get(timeout=timer)
except Timeout as caught:
    print("thread 2 timed out:", caught is timer)

try:
    gevent.with_timeout(0.02, wait)
except Timeout:
    print("thread 3 timed out")
print("with a default:", gevent.with_timeout(0.02, wait, timeout_value="gave up"))

print("event wait:", Event().wait(timeout=Timeout(0.02)))
result = AsyncResult()
try:
    result.get(timeout=Timeout(0.02))
except Timeout:
    print("result get timed out")
gevent.killall([thread1, thread2])

EXPECTED = """\
thread 1 finished: False
thread 2 timed out: True
thread 3 timed out
with a default: gave up
event wait: False
result get timed out
"""
