"""The network guard, in a child process (it changes the socket module for good),
plain and patched: loopback works, anything else is refused at once -- through
the socket module as the run has it (green when patched) and through the
unpatched originals (``greenpatch.patcher.original``).  Then the same through the
real harness: a fixture suite that tries every way out, run plain and patched.

Every address aimed at is TEST-NET-1 (192.0.2.0/24), 2001:db8::/32 or
10.255.255.1, and every check asserts the guard's own refusal: had one got
through, it would fail with another error (or a timeout), not pass."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from greenpatch.compat_tests.harness import HarnessOptions, run_suite
from greenpatch.compat_tests.manifest import load_manifest
from greenpatch.compat_tests.netguard import is_loopback_address

from .conftest import FIXTURES

CHILD = textwrap.dedent(
    """
    import socket, sys, time
    from pathlib import Path
    from greenpatch.compat_tests import netguard
    from greenpatch.patcher import original

    # A name that resolves elsewhere without asking DNS: a hosts-file entry the
    # guard reads, and a resolver (below the guard) that answers for it.
    hosts = Path(sys.argv[1])
    hosts.write_text("192.0.2.1 elsewhere.test\\n")
    netguard._HOSTS_FILE = hosts
    netguard._hosts_file_names.cache_clear()
    resolve = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "elsewhere.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", port))]
        return resolve(host, port, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
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

    # getaddrinfo, then connect to what it said: the address is judged.
    family, kind, proto, _, address = socket.getaddrinfo("elsewhere.test", 80)[0]
    refused(lambda: socket.socket(family, kind, proto).connect(address))
    refused(lambda: socket.socket().connect(("elsewhere.test", 80)))
    refused(lambda: socket.create_connection(("elsewhere.test", 80), timeout=5))

    # The unpatched socket class and functions, in the patched run too.
    plain = original("socket", "socket")
    refused(lambda: plain().connect(("192.0.2.1", 80)))
    refused(lambda: plain().connect_ex(("192.0.2.1", 80)))
    refused(lambda: plain(socket.AF_INET6).connect(("2001:db8::1", 80)))
    refused(lambda: plain(socket.AF_INET6).connect(("::ffff:192.0.2.1", 80)))
    udp = plain(socket.AF_INET, socket.SOCK_DGRAM)
    refused(lambda: udp.sendto(b"x", ("192.0.2.1", 9)))
    refused(lambda: udp.sendto(b"x", 0, ("192.0.2.1", 9)))
    refused(lambda: udp.sendmsg([b"x"], [], 0, ("192.0.2.1", 9)))
    refused(lambda: udp.connect(("192.0.2.1", 9)))
    refused(lambda: original("socket", "create_connection")(("192.0.2.1", 80), timeout=5))
    refused(lambda: original("socket", "create_connection")(("elsewhere.test", 80)))
    refused(lambda: original("socket", "getaddrinfo")("nowhere.invalid", 80))
    refused(lambda: original("socket", "gethostbyname")("nowhere.invalid"))
    refused(lambda: original("socket", "gethostbyname_ex")("nowhere.invalid"))
    refused(lambda: original("socket", "gethostbyaddr")("198.51.100.7"))
    green_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    refused(lambda: green_udp.sendmsg([b"x"], [], 0, ("192.0.2.1", 9)))
    assert any("10.255.255.1" in what for what in blocked), blocked
    assert any("'elsewhere.test' -> 192.0.2.1" in what for what in blocked), blocked
    print("guarded", len(blocked))
    """
)


@pytest.mark.parametrize("patched", [False, True], ids=["plain", "patched"])
def test_only_loopback_is_reachable(patched: bool, tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    command = [sys.executable, *(["-m", "greenpatch", "run"] if patched else []), str(script)]
    command.append(str(tmp_path / "hosts"))
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


def test_a_suite_cannot_get_past_loopback_in_either_run(tmp_path: Path) -> None:
    """The harness's own runs (the plugin installs the guard after the patch):
    each test of ``check_network.py`` passes only when the guard refused it."""
    text = (FIXTURES / "faultlib" / "suite.toml").read_text()
    text = text.replace('path = "."', f'path = "{FIXTURES / "faultlib"}"')
    text = text.replace('tests = ["check_faults.py"]', 'tests = ["check_network.py"]')
    (tmp_path / "suite.toml").write_text(text)
    manifest = load_manifest(tmp_path / "suite.toml")
    result, _ = run_suite(manifest, HarnessOptions(out_dir=tmp_path / "out"))
    verdicts = {test.nodeid.rsplit("::", 1)[-1]: test for test in result.tests}
    assert result.modes["plain"].ran and result.modes["patched"].ran
    left_to_fail = verdicts.pop("test_refusal_left_to_fail_is_judged_needs_network")
    assert left_to_fail.verdict == "needs_network"
    assert "192.0.2.1 port 80" in (left_to_fail.reason or "")
    assert len(verdicts) == 8
    for name, test in verdicts.items():
        assert (test.plain, test.patched) == ("passed", "passed"), (name, test.error)
