"""Memory benchmarks: resident memory per blocked greenlet and per idle connection.

    python benchmarks/bench_memory.py [--runs 3] [--only sleepers keepalive]

Workloads (lower is better; ratios are to gevent, < 1 = less memory):

* sleepers: 100,000 greenlets (asyncio: tasks) each blocked in a 60 s sleep.
  The worker reads its own ``VmRSS`` (``/proc/self/status``) once the hub is
  warm, spawns them, waits until every one of them has started and blocked, reads
  ``VmRSS`` again and divides the growth by 100,000.  greenpatch, gevent,
  eventlet, asyncio and uvloop; the block ends with greenpatch's ratio to uvloop.
* keepalive: 10,000 idle HTTP/1.1 keep-alive connections to a WSGI server,
  greenpatch's ``greenpatch.server.WSGIServer`` against gevent's
  ``gevent.pywsgi.WSGIServer`` (both unpatched, the same hello-world
  application as ``bench_server.py``).  The server runs in its own process; the
  worker is the client: it makes one request on a connection it then closes (so
  that the server's code paths are warm), reads the server's ``VmRSS`` from
  ``/proc/<pid>/status``, opens 10,000 loopback connections that each make one
  request, read the answer and stay open, reads ``VmRSS`` again and divides.
  Both processes raise their ``RLIMIT_NOFILE`` soft limit to the hard limit;
  when the hard limit leaves too little room the count is scaled down, and the
  block's title says so.

Each figure is the median of ``--runs`` fresh processes (see _harness.py).  RSS
counts the pages a process touched, not what its objects hold right now: the
figure is what the operating system has to give per greenlet or connection,
which is what sizes a machine.  Memory the kernel keeps for a socket (its
buffers) is not in the process's RSS and not counted.

The asyncio and uvloop sleepers are the same coroutine; a task has no stack
of its own, so this is where greenlets pay for theirs.  greenpatch's server
keeps its default limits except ``keepalive_timeout`` (15 s), raised to 10 min
so that idle connections outlive the measurement: the idle timer it arms per
connection is still there, as in a default server.  gevent's pywsgi has no idle
timeout.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import MEMORY, main

SLEEPERS_N = 100_000
BLOCK_S = 60.0  # far longer than a run: no sleeper wakes up while it is measured
POLL_S = 0.05  # how often the main greenlet looks whether all have started
CONNECTIONS = 10_000
# Descriptors a process needs besides the connections (stdio, the listener,
# epoll, pipes, the interpreter's own files).
FD_HEADROOM = 64
KEEPALIVE_TIMEOUT_S = 600.0
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
BODY = b"Hello, World!"


def rss_bytes(pid: int | str = "self") -> int:
    """``VmRSS`` of a process, in bytes (``/proc/<pid>/status`` counts in kB)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


# -- sleepers: one process measures itself ------------------------------------
def _greenlet_sleepers(spawn: Any, sleep: Any, join: Callable[[Any], None]) -> float:
    join(spawn(lambda: None))  # the hub exists and has run once
    started = [0]

    def sleeper() -> None:
        started[0] += 1
        sleep(BLOCK_S)

    before = rss_bytes()
    # Kept, as a program keeps what it spawned (to join or kill it later).
    sleepers = [spawn(sleeper) for _ in range(SLEEPERS_N)]
    # A greenlet counts itself, then blocks before the hub can run another one
    # (or this one): once the count is complete, all of them are blocked.
    while started[0] < SLEEPERS_N:
        sleep(POLL_S)
    grown = rss_bytes() - before
    del sleepers
    return grown / SLEEPERS_N


def gp_sleepers() -> float:
    import greenpatch

    return _greenlet_sleepers(greenpatch.spawn, greenpatch.sleep, lambda g: g.join())


def gevent_sleepers() -> float:
    import gevent

    return _greenlet_sleepers(gevent.spawn, gevent.sleep, lambda g: g.join())


def eventlet_sleepers() -> float:
    import eventlet

    return _greenlet_sleepers(eventlet.spawn, eventlet.sleep, lambda g: g.wait())


def _asyncio_sleepers(use_uvloop: bool) -> float:
    import asyncio

    async def body() -> float:
        await asyncio.create_task(asyncio.sleep(0))  # the loop has run a task
        started = [0]

        async def sleeper() -> None:
            started[0] += 1
            await asyncio.sleep(BLOCK_S)

        before = rss_bytes()
        tasks = [asyncio.create_task(sleeper()) for _ in range(SLEEPERS_N)]
        while started[0] < SLEEPERS_N:
            await asyncio.sleep(POLL_S)
        grown = rss_bytes() - before
        del tasks
        return grown / SLEEPERS_N

    # Not asyncio.run / uvloop.run: they would cancel the 100,000 tasks on the
    # way out.  The harness ends the worker with os._exit after the figure.
    if use_uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop.run_until_complete(body())


# -- keepalive: a server process, measured from the client's ----------------
def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard
    if hard == resource.RLIM_INFINITY:
        # Linux refuses an infinite soft limit (it is capped by fs.nr_open).
        wanted = max(soft, CONNECTIONS + FD_HEADROOM)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):
        return soft
    return wanted


def connection_count() -> int:
    """CONNECTIONS, or fewer when the hard limit on descriptors leaves less room.

    The parent and every worker compute it the same way from the same inherited
    limits, so the count in the block's title is the count the workers used."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return CONNECTIONS
    return max(1, min(CONNECTIONS, hard - FD_HEADROOM))


def _open(port: int) -> socket.socket:
    """A connection that made one request and read the whole answer, left open."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.sendall(REQUEST)
    answer = b""
    while not answer.endswith(BODY):
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError(f"the server closed the connection after {answer!r}")
        answer += chunk
    if not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected answer {answer!r}")
    return sock


def _settled_rss(pid: int) -> int:
    """The server's RSS once it has stopped moving: the last answers go out before
    their greenlets are back to waiting, so the first reading may be early."""
    previous = rss_bytes(pid)
    for _ in range(50):
        time.sleep(0.1)
        current = rss_bytes(pid)
        if current == previous:
            return current
        previous = current
    return previous


def _keepalive(implementation: str) -> float:
    raise_nofile_limit()
    count = connection_count()
    server = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve", implementation],
        stdout=subprocess.PIPE,
        text=True,
    )
    held: list[socket.socket] = []
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line:
            raise RuntimeError(f"the {implementation} server did not start")
        port = int(line)
        _open(port).close()
        before = _settled_rss(server.pid)
        held.extend(_open(port) for _ in range(count))
        after = _settled_rss(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        for sock in held:
            sock.close()
    return (after - before) / count


def serve(implementation: str) -> None:
    """``--serve IMPL``: print the port, then serve until SIGTERM (its default
    action ends the process; there is nothing to clean up)."""
    from bench_server_serve import wsgi_app  # the app bench_server.py serves

    raise_nofile_limit()
    server: Any
    if implementation == "greenpatch":
        from greenpatch.server import WSGIServer

        server = WSGIServer(
            ("127.0.0.1", 0), wsgi_app, log=None, keepalive_timeout=KEEPALIVE_TIMEOUT_S
        )
    elif implementation == "gevent":
        from gevent.pywsgi import WSGIServer as GeventWSGIServer

        server = GeventWSGIServer(("127.0.0.1", 0), wsgi_app, log=None)
    else:
        raise SystemExit(f"no server for {implementation!r}")
    server.start()
    print(server.address[1], flush=True)
    server.serve_forever()


WORKLOADS: dict[str, dict[str, Callable[[], float]]] = {
    "greenpatch": {"sleepers": gp_sleepers, "keepalive": lambda: _keepalive("greenpatch")},
    "gevent": {"sleepers": gevent_sleepers, "keepalive": lambda: _keepalive("gevent")},
    "eventlet": {"sleepers": eventlet_sleepers},
    "asyncio": {"sleepers": lambda: _asyncio_sleepers(use_uvloop=False)},
    "uvloop": {"sleepers": lambda: _asyncio_sleepers(use_uvloop=True)},
}


def _descriptions() -> dict[str, str]:
    count = connection_count()
    keepalive = f"RSS per idle keep-alive connection, {count:,} connections to a WSGI server"
    if count < CONNECTIONS:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        keepalive += f" (scaled down from {CONNECTIONS:,}: RLIMIT_NOFILE hard limit {hard:,})"
    return {
        "sleepers": (
            f"RSS per blocked greenlet (asyncio: task), {SLEEPERS_N:,} sleeping "
            f"{BLOCK_S:.0f} s (lower is better)"
        ),
        "keepalive": keepalive + " (lower is better)",
    }


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
    else:
        main(__file__, WORKLOADS, reference="gevent", descriptions=_descriptions(), unit=MEMORY)
