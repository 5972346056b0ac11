"""CooperativeSocket's read path: the wait-first guess after a short read never loses data."""

from __future__ import annotations

import socket

import pytest

from greenpatch.hub import sleep, spawn
from greenpatch.server import CooperativeSocket

from ._client import WAIT


def pair() -> tuple[CooperativeSocket, CooperativeSocket]:
    left, right = socket.socketpair()
    return CooperativeSocket(left, timeout=WAIT), CooperativeSocket(right, timeout=WAIT)


def test_data_that_arrived_after_a_short_read_is_returned_without_waiting_for_more():
    reader, writer = pair()
    with reader, writer:
        writer.sendall(b"abc")
        assert reader.recv(100) == b"abc"  # short: the next recv waits first
        writer.sendall(b"def")  # already there when the next recv starts
        reader.settimeout(0.5)
        assert reader.recv(100) == b"def"


def test_recv_into_after_a_short_read_returns_later_data():
    reader, writer = pair()
    with reader, writer:
        buffer = bytearray(64)
        writer.sendall(b"12345")
        assert reader.recv_into(buffer) == 5
        writer.sendall(b"678")
        assert reader.recv_into(buffer) == 3
        assert bytes(buffer[:3]) == b"678"


def test_recv_after_a_short_read_waits_for_data_sent_later():
    reader, writer = pair()
    with reader, writer:
        writer.sendall(b"x")
        assert reader.recv(10) == b"x"

        def late() -> None:
            sleep(0.01)
            writer.sendall(b"later")

        sender = spawn(late)
        assert reader.recv(10) == b"later"
        sender.join(WAIT)


def test_recv_after_a_short_read_still_times_out_when_nothing_comes():
    reader, writer = pair()
    with reader, writer:
        writer.sendall(b"x")
        assert reader.recv(10) == b"x"
        reader.settimeout(0.05)
        with pytest.raises(socket.timeout):
            reader.recv(10)


def test_non_blocking_recv_after_a_short_read_raises_at_once():
    reader, writer = pair()
    with reader, writer:
        writer.sendall(b"x")
        assert reader.recv(10) == b"x"
        reader.settimeout(0.0)
        with pytest.raises(BlockingIOError):
            reader.recv(10)


def test_eof_after_a_short_read_is_seen():
    reader, writer = pair()
    with reader:
        writer.sendall(b"bye")
        assert reader.recv(10) == b"bye"
        writer.close()
        assert reader.recv(10) == b""


def test_a_full_read_is_followed_by_an_immediate_try():
    reader, writer = pair()
    with reader, writer:
        writer.sendall(b"0123456789")
        assert reader.recv(4) == b"0123"  # full: the rest is read without a wait
        reader.settimeout(0.0)
        assert reader.recv(4) == b"4567"
        assert reader.recv(4) == b"89"
