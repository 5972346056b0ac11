"""Group.map, imap and imap_unordered."""

import gevent
from gevent.event import Event
from gevent.pool import Group

group = Group()


def square(n):
    return n * n


print("map:", group.map(square, range(4)))

finished = [Event() for _ in range(4)]


def in_reverse(n):
    # n waits for n + 1 to finish first: completion order is 3, 2, 1, 0
    if n < 3:
        finished[n + 1].wait()
    gevent.sleep(0)
    finished[n].set()
    return n


print("imap:", list(group.imap(in_reverse, range(4))))
for event in finished:
    event.clear()
print("imap_unordered:", list(group.imap_unordered(in_reverse, range(4))))

EXPECTED = """\
map: [0, 1, 4, 9]
imap: [0, 1, 2, 3]
imap_unordered: [3, 2, 1, 0]
"""
