"""A tiny unittest module standing in for a CPython test module.

``tests/tools/test_stdlib_tests.py`` runs it through ``tools/stdlib_tests.py``:
each test behaves in one chosen way plain and another under greenpatch's patch
(pass, fail, hang, crash, skip, broken fixture), so the script's bookkeeping can
be checked in a few seconds.  Not collected by pytest (not named ``test_*``).
"""

from __future__ import annotations

import os
import sys
import time
import unittest


def patched() -> bool:
    api = sys.modules.get("greenpatch.patcher.api")
    return bool(api is not None and api.patched())


class Behaviour(unittest.TestCase):
    def test_passes(self) -> None:
        pass

    def test_fails_patched_listed(self) -> None:
        self.assertFalse(patched(), "fails patched, listed in the expectations")

    def test_fails_patched_unlisted(self) -> None:
        self.assertFalse(patched(), "fails patched, not listed")

    def test_hangs_patched(self) -> None:
        if patched():
            time.sleep(3600)  # the green sleep: the hub waits, the watchdog ends it

    def test_hangs_listed(self) -> None:
        if patched():
            time.sleep(3600)

    def test_crashes_patched(self) -> None:
        if patched():
            os._exit(3)

    def test_interrupted_patched(self) -> None:
        if patched():
            raise KeyboardInterrupt  # unittest lets it through: ends the run

    def test_subtest_fails_patched(self) -> None:
        for index in range(2):
            with self.subTest(index=index):
                self.assertFalse(patched() and index == 1)

    def test_skipped_patched(self) -> None:
        if patched():
            self.skipTest("only plain")

    def test_fails_plain(self) -> None:
        self.fail("fails in both runs: never counted")

    @unittest.skip("always skipped")
    def test_skipped(self) -> None:
        pass


class BrokenFixturePatched(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        if patched():
            raise RuntimeError("setUpClass fails patched")

    def test_in_broken_class(self) -> None:
        pass
