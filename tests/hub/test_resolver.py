"""Resolver: stdlib lookups on the threadpool.  Loopback names and numeric hosts only."""

from __future__ import annotations

import socket
import threading
import time

import pytest

import greenpatch
from greenpatch import sleep, spawn
from greenpatch.hub import resolver
from greenpatch.hub.hub import get_hub_if_exists
from greenpatch.hub.resolver import Resolver
from greenpatch.hub.threadpool import ThreadPool

WAIT = 30
NUMERIC = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV

LOOKUPS = [
    ("getaddrinfo", ("localhost", 80)),
    ("getaddrinfo", ("localhost", 80, socket.AF_INET, socket.SOCK_STREAM)),
    ("getaddrinfo", ("127.0.0.1", 80)),
    ("getaddrinfo", ("::1", 443, socket.AF_INET6, 0, 0, socket.AI_NUMERICHOST)),
    ("getaddrinfo", (None, 8080, 0, 0, 0, socket.AI_PASSIVE)),
    ("gethostbyname", ("localhost",)),
    ("gethostbyname", ("127.0.0.1",)),
    ("gethostbyname_ex", ("localhost",)),
    ("gethostbyaddr", ("127.0.0.1",)),
    ("getnameinfo", (("127.0.0.1", 80), NUMERIC)),
    ("getnameinfo", (("::1", 80, 0, 0), NUMERIC)),
    ("getnameinfo", (("127.0.0.1", 80), 0)),
]


def stdlib(name, args):
    return getattr(socket, name)(*args)


@pytest.fixture
def pool():
    pool = ThreadPool(maxsize=2)
    yield pool
    pool.kill()


@pytest.mark.parametrize(("name", "args"), LOOKUPS, ids=[f"{n}{a}" for n, a in LOOKUPS])
def test_lookup_in_a_greenlet_matches_the_stdlib(name, args):
    expected = stdlib(name, args)
    glet = spawn(getattr(resolver, name), *args)
    assert glet.get(timeout=WAIT) == expected


@pytest.mark.parametrize(("name", "args"), LOOKUPS, ids=[f"{n}{a}" for n, a in LOOKUPS])
def test_resolver_instance_matches_the_stdlib_from_the_main_greenlet(name, args, pool):
    assert getattr(Resolver(pool), name)(*args) == stdlib(name, args)


def test_names_are_looked_up_on_the_threadpool(pool):
    assert pool.size == 0
    Resolver(pool).getaddrinfo("localhost", 80)
    assert pool.size == 1


def test_numeric_hosts_skip_the_thread_hop(pool):
    lookups = Resolver(pool)
    lookups.getaddrinfo("127.0.0.1", 80)
    lookups.getaddrinfo("::1", "443")
    lookups.gethostbyname("127.0.0.1")
    assert pool.size == 0


def test_errors_propagate_as_gaierror(pool):
    lookups = Resolver(pool)
    with pytest.raises(socket.gaierror):
        lookups.getaddrinfo("999.1.1.1", 80, flags=socket.AI_NUMERICHOST)
    with pytest.raises(socket.gaierror):
        lookups.getnameinfo(("999.1.1.1", 80), NUMERIC)
    glet = spawn(resolver.getaddrinfo, "999.1.1.1", 80, 0, 0, 0, socket.AI_NUMERICHOST)
    with pytest.raises(socket.gaierror):
        glet.get(timeout=WAIT)


def slow_original(monkeypatch, name, delay):
    """Make the captured original of ``name`` take ``delay`` seconds in its thread."""
    original = resolver._originals[name]

    def slow(*args):
        time.sleep(delay)
        return original(*args)

    monkeypatch.setitem(resolver._originals, name, slow)


def test_other_greenlets_run_during_a_lookup(monkeypatch, pool):
    slow_original(monkeypatch, "gethostbyname_ex", 0.5)
    ticks = []
    stop = []

    def ticker():
        while not stop:
            ticks.append(1)
            sleep(0.01)

    glet = spawn(ticker)
    sleep(0)
    try:
        assert Resolver(pool).gethostbyname_ex("localhost") == socket.gethostbyname_ex("localhost")
    finally:
        stop.append(1)
        glet.join(WAIT)
    assert len(ticks) >= 10  # 50 if the loop never stalled


def test_a_timeout_interrupts_a_slow_lookup(monkeypatch, pool):
    slow_original(monkeypatch, "gethostbyaddr", 0.3)
    with pytest.raises(greenpatch.Timeout):
        with greenpatch.Timeout(0.05):
            Resolver(pool).gethostbyaddr("127.0.0.1")
    assert pool.join(timeout=WAIT)  # the abandoned lookup still finishes


def test_the_resolver_calls_the_originals_not_the_current_socket_functions(monkeypatch):
    # What a patcher does: socket's functions become the green ones.
    monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
    monkeypatch.setattr(socket, "gethostbyname", resolver.gethostbyname)
    glet = spawn(resolver.getaddrinfo, "localhost", 80)
    assert glet.get(timeout=WAIT) == resolver._originals["getaddrinfo"]("localhost", 80)
    assert resolver.gethostbyname("localhost") == "127.0.0.1"


def test_a_thread_without_a_hub_looks_up_directly():
    outcome = {}

    def in_thread():
        outcome["address"] = resolver.gethostbyname("localhost")
        outcome["hub"] = get_hub_if_exists()

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(WAIT)
    assert outcome == {"address": "127.0.0.1", "hub": None}
