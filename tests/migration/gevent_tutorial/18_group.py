"""A Group tracks greenlets; join waits for all of them."""

import gevent
from gevent.pool import Group


def talk(message):
    for _ in range(2):
        print(message)


first = gevent.spawn(talk, "bar")
second = gevent.spawn(talk, "foo")
third = gevent.spawn(talk, "fizz")
group = Group()
group.add(first)
group.add(second)
group.join()
print("members after join:", len(group))
group.add(third)
group.join()

EXPECTED = """\
bar
bar
foo
foo
fizz
fizz
members after join: 0
"""
