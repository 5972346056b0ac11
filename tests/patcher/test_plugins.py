"""Plugins: the example plugin in docs/examples/plugin, found through its entry point."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from greenpatch.patcher import api

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "docs" / "examples" / "plugin"


@pytest.fixture
def plugin_path(tmp_path):
    """A directory that makes the example plugin look installed (dist-info + module)."""
    shutil.copy(PLUGIN_DIR / "greenpatch_input.py", tmp_path)
    info = tmp_path / "greenpatch_input-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: greenpatch-input\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(
        "[greenpatch.patches]\ninput = greenpatch_input:register\n"
    )
    return tmp_path


def _run(code: str, path: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": str(path)},
    )


def test_plugin_patch_is_applied_by_patch_all_and_cooperates(plugin_path):
    out = _run(
        """
        import builtins, greenpatch
        applied = greenpatch.patch_all()
        assert "input" in applied, applied
        assert builtins.input.__module__ == "greenpatch_input"
        ticks = []
        def ticker():
            while True:
                ticks.append(1)
                greenpatch.sleep(0.01)
        greenpatch.spawn(ticker)
        greenpatch.sleep(0.05)
        line = input()
        print("got", line, "ticks", len(ticks) > 0)
        """,
        plugin_path,
        stdin="hello\n",
    )
    assert out.returncode == 0, out.stderr
    assert "got hello ticks True" in out.stdout


def test_plugin_flag_switches_it_off(plugin_path):
    out = _run(
        """
        import greenpatch
        greenpatch.patch_all(input=False)
        print(greenpatch.is_patched("input"))
        """,
        plugin_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_broken_plugin_warns_and_does_not_stop_patching(tmp_path):
    info = tmp_path / "broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[greenpatch.patches]\nbroken = no_such_module:register\n"
    )
    out = _run("import greenpatch; print(greenpatch.patch_all(time=True)[:1])", tmp_path)
    assert out.returncode == 0, out.stderr
    assert "greenpatch plugin 'broken'" in out.stderr and "failed to load" in out.stderr


def test_bad_hook_events_and_hooks_are_refused():
    with pytest.raises(ValueError, match="unknown hook event"):
        api.add_hook("during_patch_all", lambda flags: None)
    with pytest.raises(TypeError):
        api.add_hook("before_patch_all", "not callable")  # type: ignore[arg-type]


def test_hooks_run_before_and_after_patch_all_once(tmp_path):
    out = _run(
        """
        import time, greenpatch
        from greenpatch.patcher import add_hook
        seen = []
        def before(flags):
            seen.append(("before", greenpatch.is_patched("time")))
        def after(flags):
            seen.append(("after", greenpatch.is_patched("time"), flags["time"]))
        add_hook("before_patch_all", before)
        add_hook("after_patch_all", after)
        greenpatch.patch_all()
        greenpatch.patch_all()  # nothing left to do: no hooks
        print(seen)
        """,
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[('before', False), ('after', True, True)]"
