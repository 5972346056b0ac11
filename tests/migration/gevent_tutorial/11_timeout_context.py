"""Timeout as a context manager: raising its own exception, or silently."""

import gevent
from gevent import Timeout


class TooLong(Exception):
    pass


try:
    with Timeout(0.02, TooLong):
        gevent.sleep(10)
except TooLong:
    print("TooLong raised")

with Timeout(0.02, False):
    gevent.sleep(10)
print("left the block silently")

timer = Timeout.start_new(timeout=0.02)
try:
    gevent.sleep(10)
except Timeout as caught:
    print("start_new fired:", caught is timer)

background = Timeout(10, ref=False)
background.start()
print("pending:", background.pending)
background.cancel()
print("cancelled:", not background.pending)

EXPECTED = """\
TooLong raised
left the block silently
start_new fired: True
pending: True
cancelled: True
"""
