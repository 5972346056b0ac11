"""A bounded queue: put blocks when full, get times out with Empty."""

import gevent
from gevent.queue import Empty, Full, Queue

tasks = Queue(maxsize=2)
done = []
quits = []


def worker(name):
    try:
        while True:
            done.append(tasks.get(timeout=0.05))
            gevent.sleep(0)
    except Empty:
        quits.append(name)


def boss():
    for task in range(1, 9):
        tasks.put(task)  # waits while two are queued
    print("boss: all queued")


gevent.joinall([gevent.spawn(boss), gevent.spawn(worker, "a"), gevent.spawn(worker, "b")])
print("done:", sorted(done))
print("quit:", sorted(quits))

small = Queue(1)
small.put("only")
try:
    small.put_nowait("more")
except Full:
    print("Full raised")
print("peek:", small.peek(), "size:", small.qsize())

EXPECTED = """\
boss: all queued
done: [1, 2, 3, 4, 5, 6, 7, 8]
quit: ['a', 'b']
Full raised
peek: only size: 1
"""
