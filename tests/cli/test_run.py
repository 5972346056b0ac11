"""`greenpatch run`: patch first, then run the target as python would."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest


def greenpatch(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "greenpatch", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_run_script_patches_before_the_script_imports_anything(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, socket, time
            import greenpatch
            assert greenpatch.is_patched("socket") and greenpatch.is_patched("time")
            assert socket.socket.__init__.__module__ == "greenpatch.patcher.green.socket"
            print("name", __name__, "argv", sys.argv[1:])
            sys.exit(7)
            """
        )
    )
    out = greenpatch("run", str(script), "--flag", "x")
    assert out.returncode == 7, out.stderr
    assert "name __main__ argv ['--flag', 'x']" in out.stdout


def test_run_module_passes_every_argument_through():
    out = greenpatch("run", "-m", "json.tool", "--help")
    assert out.returncode == 0, out.stderr
    assert "json.tool" in out.stdout


def test_run_flags_leave_modules_unpatched(tmp_path):
    script = tmp_path / "check.py"
    script.write_text("import greenpatch; print(greenpatch.is_patched('time'))\n")
    out = greenpatch("run", "--no-time", str(script))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_script_exception_gives_exit_code_1_and_a_traceback(tmp_path):
    script = tmp_path / "boom.py"
    script.write_text("raise RuntimeError('kaboom')\n")
    out = greenpatch("run", str(script))
    assert out.returncode == 1
    assert "RuntimeError: kaboom" in out.stderr


def test_missing_script_is_a_clear_error(tmp_path):
    out = greenpatch("run", str(tmp_path / "missing.py"))
    assert out.returncode == 2
    assert "can't open file" in out.stderr


def test_run_m_pytest_runs_a_suite_under_the_patch(tmp_path):
    (tmp_path / "test_sample.py").write_text(
        textwrap.dedent(
            """
            import time, greenpatch

            def test_sleep_is_green():
                assert greenpatch.is_patched("time")
                jobs = [greenpatch.spawn(time.sleep, 0.1) for _ in range(50)]
                greenpatch.joinall(jobs)
            """
        )
    )
    out = greenpatch("run", "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout


def test_run_without_leaves_a_plugin_flag_out(tmp_path):
    script = tmp_path / "check.py"
    script.write_text(
        "import greenpatch\n"
        "print(greenpatch.is_patched('zmq'), greenpatch.is_patched('psycopg2'), "
        "greenpatch.is_patched('time'))\n"
    )
    out = greenpatch("run", "--without", "zmq", "--without", "time", str(script))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "False"]


def test_run_without_an_unknown_flag_is_one_line_listing_the_known_ones(tmp_path):
    script = tmp_path / "never.py"
    script.write_text("print('ran')\n")
    out = greenpatch("run", "--without", "sockets", str(script))
    assert out.returncode == 2
    assert out.stdout == ""
    assert "unknown flags ['sockets']" in out.stderr and "'socket'" in out.stderr
    assert "Traceback" not in out.stderr


def test_patches_lists_built_in_rows_and_the_shipped_plugins():
    out = greenpatch("patches", "--json")
    assert out.returncode == 0, out.stderr
    import json

    rows = {row["name"]: row for row in map(json.loads, out.stdout.splitlines())}
    assert rows["socket"]["origin"] == "built-in" and rows["socket"]["when"] == "patch_all()"
    for plugin in ("zmq", "psycopg2", "psycopg"):
        assert rows[plugin]["origin"] == "plugin"
        assert rows[plugin]["when"].startswith(f"when {plugin} is imported")
    assert rows["select_aggressive"]["when"] == "patch_all(aggressive=True)"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="PYTHONSAFEPATH is 3.11+")
def test_run_honours_pythonsafepath_for_modules_and_scripts(tmp_path):
    # A module of the current directory that shadows an importable one.
    (tmp_path / "json.py").write_text("raise SystemExit('the current directory was searched')\n")
    script_dir = tmp_path / "app"
    script_dir.mkdir()
    (script_dir / "helper.py").write_text("VALUE = 'from the script directory'\n")
    script = script_dir / "main.py"
    script.write_text(
        "try:\n    import helper\nexcept ImportError:\n    print('not on the path')\n"
        "else:\n    print(helper.VALUE)\n"
    )
    env = dict(os.environ, PYTHONSAFEPATH="1")
    module = subprocess.run(
        [sys.executable, "-m", "greenpatch", "run", "-m", "json.tool", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert module.returncode == 0, module.stderr
    assert "json.tool" in module.stdout
    ran = subprocess.run(
        [sys.executable, "-m", "greenpatch", "run", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "not on the path"
    plain = subprocess.run(
        [sys.executable, "-m", "greenpatch", "run", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert plain.stdout.strip() == "from the script directory"
