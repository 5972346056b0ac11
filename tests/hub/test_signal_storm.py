"""Signal storms while greenlets switch hard: no lost wake-up, no crash, no deadlock.

A sender -- a real OS thread, or a child process -- sends SIGUSR1 to the process
in waves of many ``os.kill`` calls, while the main thread's greenlets ping-pong
through ``sleep(0)`` and through ``Event``s.  Signals coalesce, so the handler
runs fewer times than signals are sent; what must hold is that after the last
signal of each wave (sent once the wave's marker is set, so that a run that
begins after it must see the marker), a handler run *begins* (the sender waits
for that before its next wave: a lost signal would stall it, and the test would
fail on its timeout), and that the switching work completes in strict
alternation.

Both ways of handling are covered: ``greenpatch.hub.signal.signal_handler`` and
``signal.signal`` after ``patch_all()``.  Each case runs in a fresh interpreter
so that signal dispositions never leak into the test process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = r"""
import os, signal, sys
API, SENDER, WAVES, PER_WAVE = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import greenpatch
if API == "patched":
    greenpatch.patch_all()
from greenpatch import Event, sleep, spawn, wait_read
from greenpatch.hub.signal import signal_handler

start_thread = greenpatch.original("_thread", "start_new_thread")
real_lock = greenpatch.original("_thread", "allocate_lock")

marker = [-1]          # the last wave whose signals were all sent
runs = []              # what each handler run saw of marker when it began
wave_seen = real_lock()
wave_seen.acquire()
wave_event = Event()   # the same news for a sender that is a greenlet

def on_signal():
    seen = marker[0]
    runs.append(seen)
    if seen >= 0 and seen == len(acked):
        acked.append(seen)
        if SENDER == "thread":
            wave_seen.release()
        else:
            wave_event.set()
    sleep(0)           # a handler that switches, in the middle of the storm

acked = []
if API == "patched":
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: on_signal())
    assert previous is signal.SIG_DFL
else:
    handle = signal_handler(signal.SIGUSR1, on_signal)

done = [False]
failure = []

def thread_sender():
    try:
        pid = os.getpid()
        for wave in range(WAVES):
            for _ in range(PER_WAVE - 1):
                os.kill(pid, signal.SIGUSR1)
            # The marker is set before the wave's last signal: a handler run that
            # begins after that signal must see it (set after, every run could
            # have begun before it, and the wave would look lost).
            marker[0] = wave
            os.kill(pid, signal.SIGUSR1)
            if not wave_seen.acquire(True, 30):
                raise AssertionError(f"no handler run after wave {wave}: {runs[-5:]}")
    except BaseException as exc:
        failure.append(repr(exc))
    finally:
        done[0] = True

def process_sender():
    code = (
        "import os, signal, sys\n"
        f"parent, waves, per_wave = {os.getpid()}, {WAVES}, {PER_WAVE}\n"
        "for wave in range(waves):\n"
        "    for _ in range(per_wave - 1):\n"
        "        os.kill(parent, signal.SIGUSR1)\n"
        "    os.write(1, b'%d\\n' % wave)\n"
        "    if os.read(0, 1) != b'm':\n"  # the parent has set its marker: the last signal
        "        sys.exit(3)\n"
        "    os.kill(parent, signal.SIGUSR1)\n"
        "    if os.read(0, 1) != b'+':\n"
        "        sys.exit(3)\n"
    )
    r_out, w_out = os.pipe()
    r_in, w_in = os.pipe()
    pid = os.posix_spawn(sys.executable, [sys.executable, "-c", code], os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, r_in, 0),
                                       (os.POSIX_SPAWN_DUP2, w_out, 1)])
    os.close(r_in)
    os.close(w_out)
    os.set_blocking(r_out, False)
    buffer = b""
    try:
        for wave in range(WAVES):
            while b"\n" not in buffer:
                wait_read(r_out, timeout=30)
                chunk = os.read(r_out, 100)
                assert chunk, "the sender process died"
                buffer += chunk
            line, buffer = buffer.split(b"\n", 1)
            assert int(line) == wave
            marker[0] = wave
            os.write(w_in, b"m")  # then the wave's last signal comes
            if not wave_event.wait(30):
                raise AssertionError(f"no handler run after wave {wave}: {runs[-5:]}")
            wave_event.clear()
            os.write(w_in, b"+")
    except BaseException as exc:
        failure.append(repr(exc))
    finally:
        done[0] = True
        os.close(w_in)
        os.close(r_out)
        # The child has finished (or its pipe broke); this reaps it.
        _, status = os.waitpid(pid, 0)
        if not failure and os.waitstatus_to_exitcode(status) != 0:
            failure.append(f"sender exited with {status}")

# The switching work: two sleep(0) ping-pongers and two Event ping-pongers, each
# pair alternating strictly, until the storm is over.
trace = []
def sleeper(name):
    while not done[0]:
        trace.append(name)
        sleep(0)

ping, pong = Event(), Event()
rounds = [0]
def event_player(mine, theirs):
    while not done[0]:
        if not mine.wait(30):
            raise AssertionError("event ping-pong stalled")
        mine.clear()
        rounds[0] += 1
        theirs.set()
    theirs.set()       # let the other side see done

players = [spawn(sleeper, "a"), spawn(sleeper, "b"),
           spawn(event_player, ping, pong), spawn(event_player, pong, ping)]
ping.set()
if SENDER == "thread":
    start_thread(thread_sender, ())
    while not done[0]:
        sleep(0.01)
else:
    spawn(process_sender).join()
for player in players:
    player.get(timeout=30)

assert not failure, failure
assert acked == list(range(WAVES)), acked[-5:]
assert WAVES <= len(runs) <= WAVES * PER_WAVE, len(runs)
# Strict alternation of the sleep(0) pair, whatever the signals did in between.
body = trace[: len(trace) - len(trace) % 2]
assert body[0::2].count("a") == len(body) // 2 and body[1::2].count("b") == len(body) // 2
assert rounds[0] >= WAVES, rounds

if API == "patched":
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
else:
    handle.cancel()
print("ok", len(runs) >= WAVES)
"""


def run_storm(api: str, sender: str, waves: int, per_wave: int) -> None:
    script = textwrap.dedent(SCRIPT)
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script, api, sender, str(waves), str(per_wave)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    assert out.stdout.strip() == "ok True", out.stdout


@pytest.mark.parametrize("sender", ["thread", "process"])
@pytest.mark.parametrize("api", ["signal_handler", "patched"])
def test_every_wave_of_a_signal_storm_runs_the_handler_while_greenlets_switch(api, sender):
    run_storm(api, sender, waves=40, per_wave=50)  # 2000 signals


@pytest.mark.soak
@pytest.mark.timeout(600)
@pytest.mark.parametrize("sender", ["thread", "process"])
@pytest.mark.parametrize("api", ["signal_handler", "patched"])
def test_a_long_signal_storm_loses_no_wave(api, sender):
    run_storm(api, sender, waves=2000, per_wave=100)  # 200,000 signals
