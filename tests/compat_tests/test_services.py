"""Services: a private redis-server comes up healthy and is always stopped; the
helpers every kind of server shares (URL fields, accounts, private dirs, stop)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from greenpatch.compat_tests import services
from greenpatch.compat_tests.manifest import ServiceSpec
from greenpatch.compat_tests.services import (
    Account,
    ServiceUnavailable,
    _redis_command,
    describe_exit,
    private_dir,
    redis_ping,
    running_services,
    server_account,
    service_arguments,
    start_redis,
    stop,
    url_fields,
)

needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)
REDIS = ServiceSpec(name="redis", option="--redis-url", env="REDIS_URL")


@needs_redis
def test_redis_answers_inside_the_block_and_is_gone_after(tmp_path: Path) -> None:
    with start_redis(tmp_path) as url:
        assert url.startswith("redis://127.0.0.1:")
        assert redis_ping(url)
    assert not redis_ping(url, timeout=0.5)


@needs_redis
def test_redis_is_stopped_when_the_block_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), start_redis(tmp_path) as url:
        raise RuntimeError("boom")
    assert not redis_ping(url, timeout=0.5)


@needs_redis
def test_redis_keeps_nothing_on_disk(tmp_path: Path) -> None:
    with start_redis(tmp_path) as url:
        assert redis_ping(url)
    assert not list(tmp_path.glob("*.rdb"))
    assert not list(tmp_path.glob("appendonly*"))


def test_missing_redis_server_means_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceUnavailable, match="no redis-server on PATH"):
        with running_services([REDIS], {}, tmp_path):
            pass


def test_given_url_that_does_not_answer_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match=r"redis://127\.0\.0\.1:1/0"):
        with running_services([REDIS], {"redis": "redis://127.0.0.1:1/0"}, tmp_path):
            pass


def test_urls_reach_the_tests_as_option_and_environment() -> None:
    args, env = service_arguments([REDIS], {"redis": "redis://127.0.0.1:7/0"})
    assert args == ["--redis-url=redis://127.0.0.1:7/0"]
    assert env == {"REDIS_URL": "redis://127.0.0.1:7/0"}


@needs_redis
def test_redis_setup_statements_run_and_a_bad_one_is_named(tmp_path: Path) -> None:
    spec = ServiceSpec(name="redis", env="REDIS_URL", setup=("SET greeting hello",))
    with running_services([spec], {}, tmp_path / "good") as urls:
        assert _redis_command(urls["redis"], "GET greeting") == "$5"
    bad = ServiceSpec(name="redis", env="REDIS_URL", setup=("NOSUCHCOMMAND x",))
    with pytest.raises(ServiceUnavailable, match=r"'NOSUCHCOMMAND x': ERR unknown command"):
        with running_services([bad], {}, tmp_path / "bad"):
            pass


def test_url_fields_are_decoded_with_the_default_port() -> None:
    fields = url_fields("postgresql://us%40er:p%3Ass@127.0.0.1/my%20db", 5432)
    assert fields == {
        "url": "postgresql://us%40er:p%3Ass@127.0.0.1/my%20db",
        "host": "127.0.0.1",
        "port": "5432",
        "user": "us@er",
        "password": "p:ss",
        "database": "my db",
    }
    assert url_fields("mysql://root@[::1]:3307/test")["host"] == "::1"
    with pytest.raises(ServiceUnavailable, match="bad service URL"):
        url_fields("redis://127.0.0.1:port/0")


def test_variables_are_filled_from_the_url() -> None:
    spec = ServiceSpec(
        name="redis", variables={"RHOST": "{host}", "RADDR": "{host}:{port}/{database}"}
    )
    args, env = service_arguments([spec], {"redis": "redis://127.0.0.1:7/2"})
    assert args == []
    assert env == {"RHOST": "127.0.0.1", "RADDR": "127.0.0.1:7/2"}


def test_not_root_means_the_server_runs_as_us(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert server_account("postgres") is None


def test_root_without_the_users_is_told_what_to_create(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)

    def no_user(name: str) -> pwd.struct_passwd:
        raise KeyError(name)

    monkeypatch.setattr(pwd, "getpwnam", no_user)
    with pytest.raises(ServiceUnavailable, match=r"useradd --system postgres"):
        server_account("postgres")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_private_dir_leaves_a_work_dir_the_server_user_cannot_enter() -> None:
    nobody = pwd.getpwnam("nobody")
    account = Account("nobody", nobody.pw_uid, nobody.pw_gid)
    base = Path(tempfile.mkdtemp())  # /tmp/x, mode 0700, root's
    try:
        with private_dir(base / "work", account, "t") as hidden:
            assert base not in hidden.parents  # moved out: nobody cannot enter base
            assert hidden.stat().st_uid == nobody.pw_uid
        assert not hidden.exists()
        base.chmod(0o755)
        with private_dir(base / "work", account, "t") as inside:
            assert inside.parent == base / "work"
            assert inside.stat().st_uid == nobody.pw_uid
        assert not inside.exists()
    finally:
        shutil.rmtree(base)


def test_stop_kills_the_whole_group_when_the_server_ignores_the_signal(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = f'trap "" TERM; sleep 300 & echo $! > {pid_file}; echo ready; wait'
    process = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    child = int(pid_file.read_text())
    stop(process, timeout=0.5)
    assert process.returncode == -signal.SIGKILL
    assert describe_exit(process.returncode) == "killed by SIGKILL"
    with pytest.raises(ProcessLookupError):
        for _ in range(200):  # the child is reaped by init: wait until it is gone
            os.kill(child, 0)
            time.sleep(0.05)


@needs_redis
def test_a_server_whose_port_was_taken_starts_again_on_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        ports = iter([taken])
        real = services.free_port
        monkeypatch.setattr(services, "free_port", lambda: next(ports, None) or real())
        with start_redis(tmp_path) as url:
            assert url != f"redis://127.0.0.1:{taken}/0"
            assert redis_ping(url)
    assert "Address already in use" in (tmp_path / "redis.log").read_text()


@needs_redis
def test_a_port_always_taken_is_given_up_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        monkeypatch.setattr(services, "free_port", lambda: taken)
        with pytest.raises(ServiceUnavailable, match=r"redis-server exited with status 1"):
            with start_redis(tmp_path):
                pass
    assert (tmp_path / "redis.log").read_text().count("Address already in use") == 3
