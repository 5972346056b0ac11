"""A Timeout started by hand interrupts the greenlet that started it."""

import gevent
from gevent import Timeout


def wait():
    gevent.sleep(10)


timeout = Timeout(0.02)
timeout.start()
try:
    gevent.spawn(wait).join()
except Timeout as caught:
    print("could not complete:", caught is timeout)

idle = gevent.spawn(gevent.sleep, 10, ref=False)  # does not keep the loop alive
gevent.wait()
print("wait() did not wait for the unref'd sleep:", not idle.dead)

EXPECTED = """\
could not complete: True
wait() did not wait for the unref'd sleep: True
"""
