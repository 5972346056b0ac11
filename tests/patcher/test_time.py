"""Green time.sleep."""

from __future__ import annotations

import time

import pytest

import greenpatch
from greenpatch.patcher.green import time as green_time


def test_sleep_rejects_negative_like_the_stdlib():
    with pytest.raises(ValueError, match="non-negative"):
        green_time.sleep(-1)
    with pytest.raises(ValueError, match="non-negative"):
        time.sleep(-1)


def test_thousand_sleeping_greenlets_take_about_one_sleep():
    started = time.monotonic()
    sleepers = [greenpatch.spawn(green_time.sleep, 0.2) for _ in range(1000)]
    greenpatch.joinall(sleepers, timeout=30)
    elapsed = time.monotonic() - started
    assert all(g.successful() for g in sleepers)
    # Sequentially this would be 200 s; cooperatively about one sleep.
    assert elapsed < 20
