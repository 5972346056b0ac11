"""A Greenlet subclass that overrides _run."""

import gevent
from gevent import Greenlet


class Repeater(Greenlet):
    def __init__(self, message, times):
        Greenlet.__init__(self)
        self.message = message
        self.times = times

    def _run(self):
        for _ in range(self.times):
            print(self.message)
            gevent.sleep(0)
        return self.times


repeater = Repeater("hi there", 2)
repeater.start()
repeater.join()
print("value:", repeater.value)

EXPECTED = """\
hi there
hi there
value: 2
"""
