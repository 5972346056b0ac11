"""patch_all() in a fresh interpreter: what it swaps, warnings, idempotence, errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "always", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_patch_all_swaps_modules_and_keeps_originals():
    out = run(
        """
        import greenpatch
        applied = greenpatch.patch_all()
        import socket, time, select, selectors
        from greenpatch.patcher.green import socket as gsocket
        assert socket.socket is gsocket.socket, socket.socket
        assert time.sleep is not greenpatch.original("time", "sleep")
        assert greenpatch.original("socket", "socket").__module__ == "socket"
        assert selectors.DefaultSelector.__module__ == "greenpatch.patcher.green.selectors"
        assert greenpatch.is_patched("socket") and "time" in greenpatch.patched()
        assert greenpatch.patch_all() == []          # twice: a no-op
        print("applied", sorted(applied))
        """
    )
    assert out.returncode == 0, out.stderr
    assert "applied" in out.stdout and "'socket'" in out.stdout


def test_aggressive_removes_epoll():
    out = run(
        """
        import greenpatch, select, selectors
        greenpatch.patch_all(aggressive=True)
        assert not hasattr(select, "epoll")
        assert not hasattr(selectors, "EpollSelector")
        print("ok")
        """
    )
    assert out.returncode == 0, out.stderr


def test_flags_switch_patches_off():
    out = run(
        """
        import greenpatch, time
        greenpatch.patch_all(time=False)
        assert not greenpatch.is_patched("time")
        assert time.sleep is greenpatch.original("time", "sleep")
        print("ok")
        """
    )
    assert out.returncode == 0, out.stderr


def test_unknown_names_are_clear_errors():
    out = run(
        """
        import greenpatch
        try:
            greenpatch.patch("sockets")
        except KeyError as exc:
            print("patch:", exc)
        try:
            greenpatch.patch_all(nonsense=True)
        except TypeError as exc:
            print("flag:", exc)
        """
    )
    assert out.returncode == 0, out.stderr
    assert "unknown patch 'sockets'; known patches:" in out.stdout
    assert "socket" in out.stdout.split("known patches:")[1]
    assert "flag: patch_all() got unknown flags ['nonsense']" in out.stdout


def test_late_patch_warns_naming_the_module_that_holds_a_stale_reference(tmp_path):
    (tmp_path / "early_user.py").write_text("from time import sleep\nfrom socket import socket\n")
    out = subprocess.run(
        [
            sys.executable,
            "-W",
            "always",
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); import early_user, greenpatch;"
            " greenpatch.patch_all()",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "module 'early_user' was imported before patch_all()" in out.stderr
    assert "sleep (the original time.sleep)" in out.stderr
    assert "socket (the original socket.socket)" in out.stderr
    # One warning naming both names.  (Python 3.13 also prints the -c source line.)
    assert out.stderr.count("GreenpatchWarning") == 1


def test_patched_program_runs_blocking_code_concurrently():
    out = run(
        """
        import greenpatch
        greenpatch.patch_all()
        import socket, time
        server = socket.create_server(("127.0.0.1", 0))
        def handle():
            for _ in range(20):
                conn, _ = server.accept()
                conn.sendall(conn.recv(100).upper())
                conn.close()
        handler = greenpatch.spawn(handle)
        def client(i):
            time.sleep(0.2)
            with socket.create_connection(server.getsockname(), timeout=10) as sock:
                sock.sendall(b"hi %d" % i)
                return sock.recv(100)
        started = time.monotonic()
        clients = [greenpatch.spawn(client, i) for i in range(20)]
        replies = [c.get(timeout=30) for c in clients]
        elapsed = time.monotonic() - started
        handler.get(timeout=30)
        assert replies == [b"HI %d" % i for i in range(20)], replies
        print("elapsed", round(elapsed, 2))
        assert elapsed < 3.0, elapsed  # 20 x 0.2 s sequentially would be 4 s
        """
    )
    assert out.returncode == 0, out.stderr
