"""Services: a private redis-server comes up healthy and is always stopped."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from greenpatch.compat_tests.manifest import ServiceSpec
from greenpatch.compat_tests.services import (
    ServiceUnavailable,
    redis_ping,
    running_services,
    service_arguments,
    start_redis,
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
