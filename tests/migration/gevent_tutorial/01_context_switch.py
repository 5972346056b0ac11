"""Two greenlets hand control back and forth with sleep(0)."""

import gevent


def first():
    print("first: running")
    gevent.sleep(0)
    print("first: running again")


def second():
    print("second: running")
    gevent.sleep(0)
    print("second: running again")


gevent.joinall([gevent.spawn(first), gevent.spawn(second)])

EXPECTED = """\
first: running
second: running
first: running again
second: running again
"""
