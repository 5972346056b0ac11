"""The same tasks run one after the other, then all at once."""

import random

import gevent

events = []


def task(number):
    events.append(("start", number))
    gevent.sleep(random.uniform(0.001, 0.01))
    events.append(("done", number))
    return number


print("synchronous:")
for number in range(1, 4):
    print("task", task(number), "done")

events.clear()
print("asynchronous:")
jobs = [gevent.spawn(task, number) for number in range(1, 6)]
gevent.joinall(jobs)
first_done = next(index for index, event in enumerate(events) if event[0] == "done")
print("every task started before the first finished:", first_done == 5)
print("values:", [job.value for job in jobs])

EXPECTED = """\
synchronous:
task 1 done
task 2 done
task 3 done
asynchronous:
every task started before the first finished: True
values: [1, 2, 3, 4, 5]
"""
