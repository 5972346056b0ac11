"""Same input, same pool, same output: greenlets are scheduled deterministically."""

import gevent
from gevent.pool import Pool


def echo(value):
    gevent.sleep(0)
    return value


pool = Pool(4)
runs = [list(pool.imap_unordered(echo, range(10))) for _ in range(4)]
print("all runs equal:", all(run == runs[0] for run in runs))
print("ordered:", list(pool.imap(echo, range(10))))

EXPECTED = """\
all runs equal: True
ordered: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
"""
