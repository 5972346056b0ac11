"""Two actors play ping-pong through their inboxes, then stop cleanly.

    python docs/examples/actor.py [rounds]

An actor is a greenlet that owns an inbox queue and handles one message at a
time; nothing else touches its state, so it needs no locks.  Actors talk only by
putting messages into each other's inbox.  ``Ping`` sends ``ping 1``; ``Pong``
answers every ping with a pong; after the last round ``Ping`` tells ``Pong`` to
stop and stops too.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import greenpatch
from greenpatch.hub.queue import Queue


@dataclass(frozen=True)
class Message:
    kind: str  # "ping", "pong" or "stop"
    number: int
    sender: Actor | None = None


class Actor(greenpatch.Greenlet):
    """A greenlet that handles the messages of its inbox one by one until ``stop``."""

    def __init__(self, name: str, transcript: list[str]) -> None:
        super().__init__()
        self.name = name
        self.inbox: Queue[Message] = Queue()
        self.transcript = transcript
        self.handled = 0

    def send(self, message: Message) -> None:
        """Deliver ``message``; never blocks (the inbox is unbounded)."""
        self.inbox.put_nowait(message)

    def log(self, line: str) -> None:
        self.transcript.append(f"{self.name}: {line}")

    def _run(self) -> int:
        while True:
            message = self.inbox.get()
            if message.kind == "stop":
                self.log("stopping")
                return self.handled
            self.handled += 1
            self.receive(message)

    def receive(self, message: Message) -> None:
        raise NotImplementedError


class Pong(Actor):
    def receive(self, message: Message) -> None:
        assert message.sender is not None
        self.log(f"got ping {message.number}, answering")
        message.sender.send(Message("pong", message.number, self))


class Ping(Actor):
    def __init__(self, name: str, transcript: list[str], partner: Actor, rounds: int) -> None:
        super().__init__(name, transcript)
        self.partner = partner
        self.rounds = rounds

    def serve(self) -> None:
        """Open the game: the first ping goes out before the actors start."""
        self.partner.send(Message("ping", 1, self))

    def receive(self, message: Message) -> None:
        self.log(f"got pong {message.number}")
        if message.number < self.rounds:
            self.partner.send(Message("ping", message.number + 1, self))
        else:
            self.partner.send(Message("stop", message.number, self))
            self.send(Message("stop", message.number))


def main(rounds: int = 3) -> dict[str, Any]:
    """Play ``rounds`` rounds; print the transcript and return a summary of it."""
    transcript: list[str] = []
    pong = Pong("pong", transcript)
    ping = Ping("ping", transcript, pong, rounds)
    ping.serve()
    pong.start()
    ping.start()
    greenpatch.joinall([ping, pong], timeout=30)
    for line in transcript:
        print(line)
    summary = {
        "ping_handled": ping.get(block=False),
        "pong_handled": pong.get(block=False),
        "transcript": transcript,
    }
    print(f"{rounds} rounds: ping handled {ping.value}, pong handled {pong.value} messages")
    return summary


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
