"""A Pool bounds concurrency; map_async and a custom greenlet class."""

import gevent
from gevent import Greenlet
from gevent.pool import Pool

pool = Pool(2)
largest = []


def work(n):
    largest.append(len(pool))
    gevent.sleep(0)
    return n


print("map:", pool.map(work, range(5)))
print("never more than 2 at once:", max(largest) <= 2)


class Named(Greenlet):
    pass


named = Pool(2, greenlet_class=Named)
print("greenlet class:", type(named.spawn(work, 1)).__name__)
named.join()

job = pool.map_async(work, range(3))
print("map_async:", job.get())
print("free:", pool.free_count())

EXPECTED = """\
map: [0, 1, 2, 3, 4]
never more than 2 at once: True
greenlet class: Named
map_async: [0, 1, 2]
free: 2
"""
