"""Actors: greenlets with an inbox, exchanging messages."""

import gevent
from gevent import Greenlet
from gevent.queue import Queue


class Actor(Greenlet):
    def __init__(self, name):
        self.name = name
        self.inbox = Queue()
        self.peer = None
        Greenlet.__init__(self)

    def receive(self, message):
        raise NotImplementedError

    def _run(self):
        while True:
            message = self.inbox.get()
            if message is None:
                return
            self.receive(message)


class Player(Actor):
    def receive(self, message):
        word, count = message
        print(f"{self.name} got {word} {count}")
        if count >= 4:
            self.peer.inbox.put(None)
            return  # the peer stops; this one stops below
        reply = "pong" if word == "ping" else "ping"
        self.peer.inbox.put((reply, count + 1))
        gevent.sleep(0)


pinger, ponger = Player("pinger"), Player("ponger")
pinger.peer, ponger.peer = ponger, pinger
pinger.start()
ponger.start()
ponger.inbox.put(("ping", 1))
ponger.join()
pinger.inbox.put(None)
gevent.joinall([pinger, ponger])
print("both stopped:", pinger.dead and ponger.dead)

EXPECTED = """\
ponger got ping 1
pinger got pong 2
ponger got ping 3
pinger got pong 4
both stopped: True
"""
