"""AsyncResult carries a value, or an exception, to whoever waits."""

import gevent
from gevent.event import AsyncResult

greeting = AsyncResult()
failure = AsyncResult()


def setter():
    gevent.sleep(0.01)
    greeting.set("hello!")
    failure.set_exception(ValueError("no luck"))


def waiter():
    print(greeting.get())
    try:
        failure.get()
    except ValueError as exc:
        print("raised:", exc)


gevent.joinall([gevent.spawn(setter), gevent.spawn(waiter)])
print("successful:", greeting.successful(), failure.successful())

EXPECTED = """\
hello!
raised: no luck
successful: True False
"""
