"""Green ``os.read``/``os.write``/``readv``/``writev``: pipes, FIFOs and sockets block
only the calling greenlet, regular files and non-blocking descriptors behave as the
stdlib's.  Each script runs in a fresh patched interpreter."""

from __future__ import annotations

import textwrap

import pytest

from tests.patcher._interpreter import run_script

PRELUDE = """
import greenpatch
greenpatch.patch_all()
import os, sys, threading, time
import greenpatch as gp
"""


def run_patched(code: str) -> str:
    return run_script(PRELUDE + textwrap.dedent(code))


def test_a_multiprocessing_queue_get_in_a_thread_lets_the_feeder_run():
    out = run_patched(
        """
        import multiprocessing
        queue = multiprocessing.Queue()
        got = []
        # No timeout: get() goes straight to os.read on the queue's pipe.
        reader = threading.Thread(target=lambda: got.append(queue.get()))
        reader.start()
        queue.put(1)
        reader.join(30)
        print(got, reader.is_alive())
        """
    )
    assert out == "[1] False"


def test_a_thread_blocked_in_os_read_on_a_pipe_lets_the_writer_thread_run():
    out = run_patched(
        """
        r, w = os.pipe()
        got = []
        reader = threading.Thread(target=lambda: got.append(os.read(r, 100)))
        reader.start()
        writer = threading.Thread(target=lambda: os.write(w, b"hello"))
        writer.start()
        reader.join(30); writer.join(30)
        print(got, os.get_blocking(r), os.get_blocking(w))
        """
    )
    assert out == "[b'hello'] True True"


def test_a_large_write_to_a_pipe_is_whole_and_lets_the_reader_run():
    # More than a pipe holds: a blocking write would wait for the reader,
    # which is a greenlet of the same thread.
    out = run_patched(
        """
        r, w = os.pipe()
        size = 1 << 21
        chunks = []
        def reader():
            while True:
                data = os.read(r, 65536)
                if not data:
                    return
                chunks.append(data)
        job = gp.spawn(reader)
        written = os.write(w, b"z" * size)
        vectored = os.writev(w, [b"a" * 100000, b"b" * 100000])
        os.close(w)
        job.join()
        data = b"".join(chunks)
        print(written, vectored, len(data), data.count(b"z"), data[-1:])
        """
    )
    assert out == f"{1 << 21} 200000 {(1 << 21) + 200000} {1 << 21} b'b'"


def test_readv_waits_on_the_hub():
    out = run_patched(
        """
        r, w = os.pipe()
        gp.spawn_later(0.05, os.write, w, b"abcdef")
        first, second = bytearray(2), bytearray(10)
        print(os.readv(r, [first, second]), bytes(first), bytes(second[:4]))
        """
    )
    assert out == "6 b'ab' b'cdef'"


def test_a_fifo_read_and_write_between_greenlets():
    out = run_patched(
        """
        import tempfile
        path = os.path.join(tempfile.mkdtemp(), "fifo")
        os.mkfifo(path)
        got = []
        def reader():
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)   # no wait for a writer
            os.set_blocking(fd, True)
            got.append(os.read(fd, 100))
            os.close(fd)
        job = gp.spawn(reader)
        gp.sleep(0.02)
        fd = os.open(path, os.O_WRONLY)
        os.write(fd, b"through the fifo")
        job.join(30)
        os.close(fd)
        print(got)
        """
    )
    assert out == "[b'through the fifo']"


def test_a_non_blocking_descriptor_raises_as_in_the_stdlib():
    out = run_patched(
        """
        r, w = os.pipe()
        os.set_blocking(r, False)
        try:
            os.read(r, 10)
        except BlockingIOError:
            print("read: would block")
        os.set_blocking(w, False)
        written = 0
        try:
            while True:
                written += os.write(w, b"x" * 65536)
        except BlockingIOError:
            print("write: would block", written > 0)
        """
    )
    assert out == "read: would block\nwrite: would block True"


def test_regular_files_read_and_write_in_one_call():
    out = run_patched(
        """
        import tempfile
        with tempfile.TemporaryFile() as f:
            fd = f.fileno()
            print(os.write(fd, b"q" * 1000000))
            os.lseek(fd, 0, 0)
            print(len(os.read(fd, 2000000)), os.read(fd, 10))
        """
    )
    assert out == "1000000\n1000000 b''"


def test_errors_are_the_stdlib_ones():
    out = run_patched(
        """
        r, w = os.pipe()
        os.close(r)
        for call in (lambda: os.read(r, 1), lambda: os.write(r, b"x")):
            try:
                call()
            except OSError as exc:
                print(type(exc).__name__, exc.errno == __import__("errno").EBADF)
        try:
            os.write(w, b"x")
        except BrokenPipeError:
            print("BrokenPipeError")
        """
    )
    assert out == "OSError True\nOSError True\nBrokenPipeError"


def test_a_call_the_descriptor_was_not_opened_for_fails_at_once():
    # A pipe's read end is never writable: the stdlib's write fails with EBADF
    # at once, and so must the green one (not wait for POLLOUT for ever).
    out = run_patched(
        """
        r, w = os.pipe()
        for call in (lambda: os.write(r, b"x"), lambda: os.read(w, 1)):
            try:
                call()
            except OSError as exc:
                print(exc.errno == __import__("errno").EBADF)
        """
    )
    assert out == "True\nTrue"


def test_a_write_to_a_pipe_with_room_is_made_without_asking_poll_first():
    # Where the kernel takes RWF_NOWAIT for pipes (Linux 5.x+), the write is
    # tried as is (one system call, as unpatched); a read still asks poll().
    out = run_patched(
        """
        from greenpatch.patcher.green import _fdio
        asked = []
        real_poll = _fdio._real_poll
        def counting_poll():
            asked.append(1)
            return real_poll()
        _fdio._real_poll = counting_poll
        r, w = os.pipe()
        try:
            os.pwritev(w, [b""], -1, os.RWF_NOWAIT)
        except (AttributeError, OSError):
            print("no RWF_NOWAIT for pipes here")
            raise SystemExit
        print(os.write(w, b"x" * 100), os.writev(w, [b"a", b"b"]), len(asked))
        print(os.read(r, 1000) == b"x" * 100 + b"ab", len(asked))
        print(os.get_blocking(w))
        """
    )
    if out == "no RWF_NOWAIT for pipes here":
        pytest.skip(out)
    assert out == "100 2 0\nTrue 1\nTrue"


def test_a_write_to_a_full_pipe_waits_for_room_then_writes_everything():
    # The first (RWF_NOWAIT) write takes what fits; the rest waits on the hub
    # while a reader greenlet drains the pipe.
    out = run_patched(
        """
        r, w = os.pipe()
        os.write(w, b"f" * 60000)  # nearly full: the next write goes in part
        got = []
        def drain():
            while sum(map(len, got)) < 60000 + 200000:
                got.append(os.read(r, 65536))
        reader = gp.spawn(drain)
        print(os.write(w, b"g" * 200000))
        reader.join(30)
        data = b"".join(got)
        print(len(data), data == b"f" * 60000 + b"g" * 200000, os.get_blocking(w))
        """
    )
    assert out == "200000\n260000 True True"


def test_a_terminal_where_rwf_nowait_is_refused_still_reads_and_writes():
    out = run_patched(
        """
        import tty
        controller, terminal = os.openpty()
        tty.setraw(terminal)
        got = []
        reader = gp.spawn(lambda: got.append(os.read(controller, 100)))
        gp.sleep(0)  # the reader runs first, and waits
        print(os.write(terminal, b"over the terminal"))
        reader.join(30)
        print(got, os.get_blocking(terminal))
        """
    )
    assert out == "17\n[b'over the terminal'] True"
