"""A signal handler kills a long-running greenlet so the program can end."""

import os
import signal

import gevent


def run_forever():
    gevent.sleep(1000)


thread = gevent.spawn(run_forever)
handler = gevent.signal_handler(signal.SIGUSR1, gevent.kill, thread)
gevent.spawn(os.kill, os.getpid(), signal.SIGUSR1)
thread.join()
handler.cancel()
print("killed:", thread.dead, type(thread.value).__name__)
gevent.reinit()  # what gevent code calls after fork; harmless here
print("still fine:", gevent.spawn(lambda: 42).get())

EXPECTED = """\
killed: True GreenletExit
still fine: 42
"""
