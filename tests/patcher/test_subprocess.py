"""The green ``subprocess`` twin, in fresh patched interpreters (never in the pytest process)."""

from __future__ import annotations

import textwrap

from tests.patcher._interpreter import run_script

PRELUDE = """
import greenpatch
greenpatch.patch_all()
import os, subprocess, sys, time
import greenpatch as gp

ticks = []
def _ticker():
    while True:
        ticks.append(1)
        time.sleep(0.01)
gp.spawn(_ticker)

def ticked_during(fn, *args, **kwargs):
    before = len(ticks)
    result = fn(*args, **kwargs)
    return result, len(ticks) - before
"""


def run_patched(code: str, prelude: str = PRELUDE) -> str:
    return run_script(prelude + textwrap.dedent(code))


def test_run_call_check_call_check_output_cooperate():
    out = run_patched(
        """
        from greenpatch.patcher.green import subprocess as green
        assert subprocess.Popen is green.Popen
        slow = ["sh", "-c", "sleep 0.2; echo out; echo err >&2; exit 3"]
        result, ticked = ticked_during(subprocess.run, slow, capture_output=True)
        assert (result.returncode, result.stdout, result.stderr) == (3, b"out\\n", b"err\\n")
        assert ticked >= 8, ticked
        code, ticked = ticked_during(subprocess.call, ["sleep", "0.2"])
        assert code == 0 and ticked >= 8, (code, ticked)
        _, ticked = ticked_during(subprocess.check_call, ["sleep", "0.2"])
        assert ticked >= 8, ticked
        # Only stdout piped, no timeout: the stdlib's fast path reads stdout directly.
        output, ticked = ticked_during(subprocess.check_output, ["sh", "-c", "sleep 0.2; echo hi"])
        assert output == b"hi\\n" and ticked >= 8, (output, ticked)
        try:
            subprocess.check_output(["sh", "-c", "echo partial; exit 2"])
        except subprocess.CalledProcessError as exc:
            assert (exc.returncode, exc.output) == (2, b"partial\\n")
        text = subprocess.run(["cat"], input="é\\n", capture_output=True, text=True).stdout
        assert text == "é\\n", text
        assert subprocess.getoutput("echo getoutput") == "getoutput"
        print("ok")
        """
    )
    assert out == "ok"


def test_wait_and_communicate_timeouts_follow_the_stdlib():
    out = run_patched(
        """
        p = subprocess.Popen(["sleep", "5"])
        start = time.monotonic()
        try:
            p.wait(timeout=0.2)
        except subprocess.TimeoutExpired as exc:
            assert exc.cmd == ["sleep", "5"] and exc.timeout == 0.2
            assert 0.15 < time.monotonic() - start < 1.5
        else:
            raise AssertionError("no TimeoutExpired")
        assert p.poll() is None
        p.kill()
        assert p.wait() == -9 and p.returncode == -9

        # communicate(timeout): partial output in the exception, then resume.
        p = subprocess.Popen(
            ["sh", "-c", "echo first; sleep 0.4; echo second"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            p.communicate(timeout=0.2)
        except subprocess.TimeoutExpired as exc:
            assert exc.output == b"first\\n", exc.output
        else:
            raise AssertionError("no TimeoutExpired")
        (out, err), ticked = ticked_during(p.communicate)
        assert (out, err, p.returncode) == (b"first\\nsecond\\n", b"", 0), (out, err)
        assert ticked >= 8, ticked

        # run(timeout) kills the child and raises with what was read.
        start = time.monotonic()
        try:
            subprocess.run(["sh", "-c", "echo early; exec sleep 5"], capture_output=True,
                           timeout=0.3)
        except subprocess.TimeoutExpired as exc:
            assert exc.stdout == b"early\\n" and time.monotonic() - start < 2
        else:
            raise AssertionError("no TimeoutExpired")
        print("ok")
        """
    )
    assert out == "ok"


def test_pipes_are_cooperative_file_objects():
    out = run_patched(
        """
        # A big input and output through cat, both directions at once.
        payload = os.urandom(1 << 21)
        out, ticked = ticked_during(
            lambda: subprocess.run(["cat"], input=payload, capture_output=True).stdout)
        assert out == payload

        # Reading lines as they come, in text mode, while others run.
        p = subprocess.Popen(["sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.1; done"],
                             stdout=subprocess.PIPE, text=True)
        lines, ticked = ticked_during(lambda: [line for line in p.stdout])
        assert lines == ["line 1\\n", "line 2\\n", "line 3\\n"] and ticked >= 15, (lines, ticked)
        assert p.wait() == 0

        # Writing more than a pipe holds to a child that reads slowly, while another
        # greenlet reads its output: with a blocking write this would deadlock.
        p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             bufsize=0)
        received = []
        def reader():
            while True:
                chunk = p.stdout.read(65536)
                if not chunk:
                    return
                received.append(len(chunk))
        job = gp.spawn(reader)
        p.stdin.write(b"y" * (1 << 20))
        p.stdin.close()
        job.join()
        assert sum(received) == 1 << 20 and p.wait() == 0
        print("ok")
        """
    )
    assert out == "ok"


def test_many_processes_run_concurrently():
    out = run_patched(
        """
        def job(i):
            return subprocess.run(["sh", "-c", f"sleep 0.3; exit {i}"]).returncode
        start = time.monotonic()
        jobs = [gp.spawn(job, i) for i in range(20)]
        gp.joinall(jobs, raise_error=True)
        elapsed = time.monotonic() - start
        assert [j.value for j in jobs] == list(range(20)), [j.value for j in jobs]
        assert elapsed < 2.5, elapsed              # one after the other would take 6 s
        print("ok")
        """
    )
    assert out == "ok"


def test_exit_statuses_survive_libev_reaping_and_foreign_waitpid():
    out = run_patched(
        """
        from greenpatch.patcher.green import os as green_os
        # Children exiting together while another is waited for: libev reaps them
        # all; each Popen still gets its own status (poll and wait).
        long_one = subprocess.Popen(["sleep", "0.4"])
        quick = [subprocess.Popen(["sh", "-c", f"exit {i}"]) for i in range(1, 6)]
        assert long_one.wait() == 0
        assert [p.poll() for p in quick[:2]] == [1, 2]
        assert [p.wait() for p in quick] == [1, 2, 3, 4, 5]

        # A green os.waitpid collecting a Popen's child: as in the stdlib, the
        # Popen then reports 0, and does not hang.
        p = subprocess.Popen(["sh", "-c", "exit 4"])
        assert os.WEXITSTATUS(os.waitpid(p.pid, 0)[1]) == 4
        assert p.wait(timeout=5) == 0

        # The original waitpid, behind the watcher's back: found on the next re-check.
        p = subprocess.Popen(["sh", "-c", "sleep 0.1; exit 6"])
        greenpatch.original("os", "waitpid")(p.pid, 0)
        start = time.monotonic()
        assert p.wait(timeout=5) == 0 and time.monotonic() - start < 2
        assert not green_os._reaper.watching(p.pid)

        # An unpatched Popen (bound before patching) waited for in a real thread
        # while our watchers make libev reap every child.
        stdlib_popen = greenpatch.original("subprocess", "Popen")
        from greenpatch.hub.event import Event
        keep_reaping = subprocess.Popen(["sleep", "0.5"])
        result, done = [], Event()
        def in_thread():
            try:
                result.append(stdlib_popen(["sh", "-c", "exit 9"]).wait())
            except BaseException as exc:
                result.append(repr(exc))
            done.set()
        greenpatch.original("_thread", "start_new_thread")(in_thread, ())
        assert done.wait(10) and result == [9], result
        assert keep_reaping.wait() == 0
        print("ok")
        """
    )
    assert out == "ok"


def test_subprocess_is_cooperative_without_the_os_patch():
    out = run_patched(
        """
        import greenpatch
        greenpatch.patch_all(os=False)
        import os, subprocess, time
        import greenpatch as gp
        assert not greenpatch.is_patched("os") and greenpatch.is_patched("subprocess")
        ticks = []
        def ticker():
            while True:
                ticks.append(1)
                time.sleep(0.01)
        gp.spawn(ticker)
        assert subprocess.run(["sh", "-c", "sleep 0.2; exit 2"]).returncode == 2
        assert len(ticks) >= 8, len(ticks)
        print("ok")
        """,
        prelude="",
    )
    assert out == "ok"
