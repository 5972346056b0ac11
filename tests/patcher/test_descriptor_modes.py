"""Descriptors that leave greenpatch keep the blocking mode the stdlib gives them.

``O_NONBLOCK`` belongs to the open file description, which a detached or
duplicated descriptor and a child process share: whatever the green calls do,
the mode must be the stdlib's.  Each script runs in a fresh patched interpreter.
"""

from __future__ import annotations

import textwrap

from tests.patcher._interpreter import run_script

PRELUDE = """
import greenpatch
greenpatch.patch_all()
import os, socket, subprocess, sys, threading
"""


def run_patched(code: str) -> str:
    return run_script(PRELUDE + textwrap.dedent(code))


def test_a_detached_socket_descriptor_is_blocking_as_in_the_stdlib():
    out = run_patched(
        """
        a, b = socket.socketpair()
        fd = a.detach()
        print(os.get_blocking(fd), b.getblocking(), os.get_blocking(b.fileno()))
        """
    )
    assert out == "True True True"


def test_the_descriptor_follows_the_timeout_as_in_the_stdlib():
    out = run_patched(
        """
        s = socket.socket()
        seen = [os.get_blocking(s.fileno())]
        s.settimeout(2.5); seen.append(os.get_blocking(s.fileno()))
        s.settimeout(None); seen.append(os.get_blocking(s.fileno()))
        s.setblocking(False); seen.append(os.get_blocking(s.fileno()))
        s.setblocking(True); seen.append(os.get_blocking(s.fileno()))
        print(seen, s.gettimeout())
        """
    )
    assert out == "[True, False, True, False, True] None"


def test_a_blocking_socket_still_waits_on_the_hub_and_others_run():
    # The descriptor is blocking, yet recv, accept and connect never stop the
    # thread: a ticker greenlet keeps running while they wait.
    out = run_patched(
        """
        import greenpatch as gp
        ticks = []
        stop = gp.Event()
        def ticker():
            while not stop.is_set():
                ticks.append(1)
                gp.sleep(0.005)
        gp.spawn(ticker)
        server = socket.create_server(("127.0.0.1", 0))
        port = server.getsockname()[1]
        assert os.get_blocking(server.fileno())
        accepted = []
        def serve():
            conn, _ = server.accept()
            accepted.append(os.get_blocking(conn.fileno()))
            conn.sendall(conn.recv(100) * 2)
            conn.close()
        job = gp.spawn(serve)
        gp.sleep(0.05)  # the server waits in accept: a blocking accept would hang here
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(b"hi")
        reply = client.recv(100)
        job.join()
        stop.set()
        print(reply, accepted, os.get_blocking(client.fileno()), len(ticks) > 1)
        """
    )
    assert out == "b'hihi' [True] True True"


def test_multiprocessing_pipe_connections_receive_between_threads():
    out = run_patched(
        """
        import multiprocessing
        r, w = multiprocessing.Pipe()
        threading.Timer(0.05, lambda: w.send({"x": 1})).start()
        print(r.poll(10), r.recv())
        r2, w2 = multiprocessing.Pipe(duplex=False)
        threading.Timer(0.05, lambda: w2.send_bytes(b"y" * 300000)).start()
        print(len(r2.recv_bytes()))
        """
    )
    assert out == "True {'x': 1}\n300000"


def test_a_manager_works_under_the_patch():
    out = run_patched(
        """
        import multiprocessing
        with multiprocessing.Manager() as manager:
            shared = manager.dict()
            shared["a"] = 1
            items = manager.list(range(3))
            print(dict(shared), list(items))
        """
    )
    assert out == "{'a': 1} [0, 1, 2]"


def test_a_popen_pipe_handed_to_a_second_process_is_blocking_there():
    out = run_patched(
        """
        first = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(0.2); print('x' * 100000)"],
            stdout=subprocess.PIPE,
        )
        print(os.get_blocking(first.stdout.fileno()))
        second = subprocess.Popen(
            [sys.executable, "-c", "import sys; print(len(sys.stdin.buffer.read()))"],
            stdin=first.stdout, stdout=subprocess.PIPE,
        )
        first.stdout.close()
        out, _ = second.communicate(timeout=30)
        print(out.decode().strip(), first.wait(), second.returncode)
        """
    )
    assert out == "True\n100001 0 0"


def test_popen_wait_reads_the_status_through_os_waitpid_at_call_time():
    # As the stdlib's: a replaced os.waitpid is honoured (a stopped child's
    # status gives -signal), and the real status is read once the child exits.
    out = run_patched(
        """
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        real_status = os.waitpid(proc.pid, 0)[1]
        real_waitpid = os.waitpid
        os.waitpid = lambda pid, options: (pid, (3 << 8) | 0x7F)   # WIFSTOPPED, signal 3
        try:
            print(proc.wait(), real_status)
        finally:
            os.waitpid = real_waitpid
        """
    )
    assert out == "-3 0"


def test_communicate_flushes_stdin_once():
    out = run_patched(
        """
        from unittest import mock
        proc = subprocess.Popen(
            [sys.executable, "-c", "pass"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        with proc, mock.patch.object(proc, "stdin") as stdin, open(os.devnull, "wb") as null:
            stdin.flush.side_effect = BrokenPipeError
            stdin.fileno.return_value = null.fileno()
            proc.communicate(b"stuff")
            print(stdin.flush.call_count)
        """
    )
    assert out == "1"
