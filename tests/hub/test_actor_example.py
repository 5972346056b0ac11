"""docs/examples/actor.py runs, in process and as a script, and plays every round."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "actor.py"


def test_actors_play_every_round_and_stop_cleanly(capsys):
    example = runpy.run_path(str(EXAMPLE), run_name="actor_example")
    summary = example["main"](5)
    assert summary["ping_handled"] == 5
    assert summary["pong_handled"] == 5
    transcript = summary["transcript"]
    exchanges = [line for line in transcript if "stopping" not in line]
    assert exchanges == [
        line
        for n in range(1, 6)
        for line in (f"pong: got ping {n}, answering", f"ping: got pong {n}")
    ]
    assert sorted(line for line in transcript if "stopping" in line) == [
        "ping: stopping",
        "pong: stopping",
    ]
    assert capsys.readouterr().out.splitlines()[: len(transcript)] == transcript


def test_actor_example_runs_as_a_script():
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "4"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=EXAMPLE.parents[2],
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "ping: got pong 4" in lines
    assert "pong: stopping" in lines and "ping: stopping" in lines
    assert lines[-1] == "4 rounds: ping handled 4, pong handled 4 messages"
