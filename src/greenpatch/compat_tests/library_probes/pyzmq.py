"""The pyzmq probe: one REQ/REP round trip that the server answers late.

Each call opens a REQ socket to a local ROUTER server, sends one request and
waits in ``recv()`` for the reply, which the server sends ``delay`` seconds
later; then it closes the socket.  The server answers every request on its own
clock (a ROUTER keeps a heap of replies falling due), so 20 requests at once
are answered together, about ``delay`` after they arrived.  ``recv()`` waits in
libzmq unless the ``zmq`` plugin made it cooperative: without it the calls take
turns and the factor is about 1.

The server runs in a plain Python process of its own (this file, run by path:
``python pyzmq.py --delay 0.3``), never in the measured hub.  It prints ``port
N`` once bound and exits when its standard input reaches end of file -- when
the probe closes it, or dies.  The first call of the probe (the warm-up, not
measured) starts it; the probe process stops it at exit.

This module is also the pytest plugin of the suite's runs (``-p`` in
suites/pyzmq.toml): pyzmq's sdist holds the package's sources, ``zmq/``, next
to its ``tests/``, and pytest runs there, with that directory first on
``sys.path`` (``python -m`` puts it there, and so does ``greenpatch run -m``).
``import zmq`` in the tests' conftest then found the source tree, whose
extension modules are not built, instead of the installed wheel, and the run
ended before its first test.  ``pytest_load_initial_conftests`` takes the
directory off ``sys.path`` before any conftest is imported.  (Rejected:
building pyzmq from the sdist in place -- cmake, a C++ compiler and libzmq's
sources, minutes per environment, to test a build the wheel's users never run;
``PYTHONSAFEPATH`` -- Python 3.11+ only, and ``greenpatch run -m`` adds the
directory itself.)
"""

from __future__ import annotations

import argparse
import heapq
import importlib
import os
import sys
import time
from typing import Any

from greenpatch.compat_tests.library_probes._server_process import SlowServers
from greenpatch.compat_tests.probes import ProbeContext

__all__ = ["probe", "pytest_load_initial_conftests", "serve"]

_REQUEST = b"greenpatch probe"
_servers = SlowServers(__file__, "ZeroMQ", lambda port: f"tcp://127.0.0.1:{port}")
_context: Any = None


def probe(context: ProbeContext) -> None:
    """One ``send`` + ``recv`` on a new REQ socket; the reply comes ``delay`` seconds late."""
    global _context
    address = _servers.address(context.delay)
    if "zmq" not in sys.modules:
        # The probe runs in the sdist's root: its ``zmq/`` is not the installed one
        # (see the module docstring).
        _forget_directory(os.getcwd())
    # Imported here, after patch_all(); through importlib so no stubs are needed.
    zmq: Any = importlib.import_module("zmq")
    if _context is None:
        _context = zmq.Context()
    sock = _context.socket(zmq.REQ)
    try:
        sock.linger = 0
        sock.rcvtimeo = int((context.delay + 30) * 1000)
        sock.connect(address)
        sock.send(_REQUEST)
        reply = sock.recv()
    finally:
        sock.close()
    if reply != _REQUEST:
        raise RuntimeError(f"the server answered {reply!r}, not {_REQUEST!r}")


# -- the suite's pytest plugin ------------------------------------------------------------
def pytest_load_initial_conftests(early_config: Any) -> None:
    """Pytest hook: the directory pytest was started in comes off ``sys.path``, so
    that ``import zmq`` finds the installed pyzmq, not the sdist's unbuilt sources.

    Runs before pytest imports the first conftest (pytest's own loading of
    conftests is the last implementation of this hook)."""
    _forget_directory(str(early_config.invocation_params.dir))


def _forget_directory(directory: str) -> None:
    """Take ``directory`` off ``sys.path`` (and ``""``, when that names it: the current one)."""
    directory = os.path.abspath(directory)
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != directory]


# -- the server (a plain process) -----------------------------------------------------------
def serve(delay: float) -> None:
    """Bind a ROUTER on loopback, print its port, echo each request ``delay`` seconds
    after it arrived, until standard input ends."""
    zmq: Any = importlib.import_module("zmq")
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.linger = 0
    port = router.bind_to_random_port("tcp://127.0.0.1")
    print("port", port, flush=True)
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    poller.register(sys.stdin.fileno(), zmq.POLLIN)
    due: list[tuple[float, int, list[bytes]]] = []  # (when, order, frames)
    order = 0
    while True:
        now = time.monotonic()
        while due and due[0][0] <= now:
            router.send_multipart(heapq.heappop(due)[2])
        timeout = None if not due else max(0.0, (due[0][0] - now) * 1000)
        for item, _events in poller.poll(timeout):
            if item is router:
                # [identity, b"", body]: the REQ envelope, sent back as it came.
                heapq.heappush(due, (time.monotonic() + delay, order, router.recv_multipart()))
                order += 1
            elif not os.read(sys.stdin.fileno(), 1):  # end of file: the probe is done
                router.close()
                context.term()
                return


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the pyzmq probe's slow ROUTER server")
    parser.add_argument("--delay", type=float, required=True)
    serve(parser.parse_args(argv).delay)


if __name__ == "__main__":
    main()
