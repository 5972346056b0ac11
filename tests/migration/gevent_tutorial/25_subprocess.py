"""A child process read by one greenlet and fed by another."""

import gevent
from gevent.subprocess import PIPE, Popen

child = Popen(["sh", "-c", 'read line; echo "child got $line"'], stdin=PIPE, stdout=PIPE)


def reader():
    # Blocks this greenlet only: the writer below must run for data to come.
    return child.stdout.read().decode().strip()


def writer():
    child.stdin.write(b"hello\n")
    child.stdin.close()


got = gevent.spawn(reader)
gevent.spawn(writer)
print(got.get())
print("exit status:", child.wait())

out, _ = Popen(["echo", "communicate works"], stdout=PIPE).communicate()
print(out.decode().strip())

EXPECTED = """\
child got hello
exit status: 0
communicate works
"""
