"""A greenlet's state: started, ready, successful, value, exception."""

import gevent


def win():
    return "you win"


def fail():
    raise RuntimeError("you fail")


winner = gevent.spawn(win)
loser = gevent.spawn(fail)
print("started:", winner.started, loser.started)
try:
    gevent.joinall([winner, loser])
except RuntimeError:
    print("joinall raised")
print("value:", winner.value)
print("ready:", winner.ready(), loser.ready())
print("successful:", winner.successful(), loser.successful())
print("exception:", repr(loser.exception))
print("bool after finishing:", bool(winner))

EXPECTED = """\
started: True True
value: you win
ready: True True
successful: True False
exception: RuntimeError('you fail')
bool after finishing: False
"""
