"""The network guard, in a child process (it changes the socket module for good),
plain and patched: loopback works, anything else is refused at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from greenpatch.compat_tests.netguard import is_loopback_address

CHILD = textwrap.dedent(
    """
    import socket, sys, time
    from greenpatch.compat_tests import netguard
    blocked = []
    netguard.install(on_block=blocked.append)

    def refused(call):
        started = time.monotonic()
        try:
            call()
        except netguard.NetworkGuardError as exc:
            assert isinstance(exc, ConnectionRefusedError), type(exc)
            assert "--allow-network" in str(exc), exc
            assert time.monotonic() - started < 1.0
            return
        raise AssertionError(f"{call} was not refused")

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    socket.create_connection(("localhost", port), timeout=5).close()

    refused(lambda: socket.create_connection(("10.255.255.1", 80), timeout=5))
    refused(lambda: socket.socket().connect_ex(("10.255.255.1", 80)))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    refused(lambda: udp.sendto(b"x", ("8.8.8.8", 53)))
    refused(lambda: socket.getaddrinfo("doesnotexist.google.com", 80))
    try:
        socket.gethostbyname("doesnotexist.google.com")
    except socket.gaierror:
        pass  # code that expects a lookup failure gets one
    refused(lambda: socket.gethostbyaddr("8.8.8.8"))
    assert any("10.255.255.1" in what for what in blocked), blocked
    print("guarded", len(blocked))
    """
)


@pytest.mark.parametrize("patched", [False, True], ids=["plain", "patched"])
def test_only_loopback_is_reachable(patched: bool, tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    command = [sys.executable, *(["-m", "greenpatch", "run"] if patched else []), str(script)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("guarded "), done.stdout


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.255.255.1", False),
        ("0.0.0.0", False),
        ("localhost", False),  # a name, not an address: resolved first
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback_address(host) is loopback
