"""A BoundedSemaphore lets two workers in at a time."""

import gevent
from gevent.lock import BoundedSemaphore

semaphore = BoundedSemaphore(2)


def worker_explicit(n):
    semaphore.acquire()
    print(f"worker {n} acquired")
    gevent.sleep(0)
    semaphore.release()
    print(f"worker {n} released")


def worker_with(n):
    with semaphore:
        print(f"worker {n} acquired")
        gevent.sleep(0)
    print(f"worker {n} released")


gevent.joinall(
    [gevent.spawn(worker_explicit, n) for n in range(2)]
    + [gevent.spawn(worker_with, n) for n in range(2, 4)]
)
try:
    semaphore.release()
except ValueError:
    print("released too often: ValueError")

EXPECTED = """\
worker 0 acquired
worker 1 acquired
worker 0 released
worker 1 released
worker 2 acquired
worker 3 acquired
worker 2 released
worker 3 released
released too often: ValueError
"""
