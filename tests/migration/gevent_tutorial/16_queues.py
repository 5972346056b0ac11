"""Workers take tasks from a queue in turn."""

import gevent
from gevent.queue import Queue

tasks = Queue()


def worker(name):
    while not tasks.empty():
        task = tasks.get()
        print(f"{name} got task {task}")
        gevent.sleep(0)
    print(f"{name} quits")


def boss():
    for task in range(1, 7):
        tasks.put_nowait(task)


gevent.spawn(boss).join()
gevent.joinall(
    [gevent.spawn(worker, "ann"), gevent.spawn(worker, "bob"), gevent.spawn(worker, "cy")]
)

EXPECTED = """\
ann got task 1
bob got task 2
cy got task 3
ann got task 4
bob got task 5
cy got task 6
ann quits
bob quits
cy quits
"""
