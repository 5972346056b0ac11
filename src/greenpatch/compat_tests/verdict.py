"""From two outcomes to one verdict.

The harness compares, it does not guess (docs/architecture.md): a test counts against
greenpatch only when it passes plain and fails (or hangs, or crashes) patched,
and only after a re-run in each mode says the same -- otherwise it is "flaky".
A failure caused by the network guard is "needs_network" whatever the mode: it
says nothing about cooperation.  A manifest's expected incompatibility turns a
would-be regression into "expected", with the manifest's reason.
"""

from __future__ import annotations

from collections.abc import Callable

from greenpatch.compat_tests.runner import ModeRun, TestRecord
from greenpatch.reports.model import TestVerdict

__all__ = ["BAD", "NOT_RUN", "confirm", "judge", "judge_all"]

#: Outcomes that count as "does not work".
BAD = frozenset({"failed", "error", "hung", "crashed"})
#: Internal outcome of a test that one run saw and the other never reached
#: (written as null in the result document).
NOT_RUN = "not_run"


def judge(
    nodeid: str,
    plain: TestRecord | None,
    patched: TestRecord | None,
    expected_reason: str | None = None,
) -> TestVerdict:
    """The verdict of one test (a regression here is still a suspect: see ``confirm``)."""
    verdict = TestVerdict(
        nodeid=nodeid,
        verdict="passed",
        plain=plain.outcome if plain else None,
        patched=patched.outcome if patched else None,
        duration_plain=plain.duration if plain else None,
        duration_patched=patched.duration if patched else None,
    )
    blocked = [r for r in (plain, patched) if r is not None and r.network and r.outcome != "passed"]
    p, q = verdict.plain, verdict.patched
    if blocked:
        verdict.verdict = "needs_network"
        verdict.reason = "; ".join(sorted(set(blocked[0].network)))[:500]
        verdict.error = blocked[0].detail
    elif p == "passed" and q in BAD:
        verdict.verdict = "expected" if expected_reason else "regression"
        verdict.reason = expected_reason
        _take_failure(verdict, patched)
    elif p in BAD and q == "passed":
        verdict.verdict = "fixed"
        _take_failure(verdict, plain)
    elif NOT_RUN in (p, q):
        # The run stopped before this test (crash outside a test, deadline, a
        # patch that broke at start-up): nothing to judge, and never "passed".
        verdict.verdict = "skipped"
        verdict.reason = f"did not run in the {'plain' if p == NOT_RUN else 'patched'} run"
        # In the document: no outcome for the run that did not reach the test.
        verdict.plain = None if p == NOT_RUN else p
        verdict.patched = None if q == NOT_RUN else q
    elif "skipped" in (p, q):
        verdict.verdict = "skipped"
        skipped = plain if p == "skipped" else patched
        verdict.reason = skipped.detail if skipped else None
    elif p in BAD or q in BAD:
        outcomes = {p, q}
        verdict.verdict = "hung" if "hung" in outcomes else "crashed"
        if not outcomes & {"hung", "crashed"}:
            verdict.verdict = "failed_both"
        _take_failure(verdict, plain if p in BAD else patched)
    if expected_reason and verdict.verdict == "passed":
        verdict.reason = f"listed as expected ({expected_reason}) but passes: drop the entry?"
    return verdict


def _take_failure(verdict: TestVerdict, record: TestRecord | None) -> None:
    if record is not None:
        verdict.error = record.detail
        verdict.stacks = record.stacks


def judge_all(
    plain: ModeRun | None,
    patched: ModeRun | None,
    expected: Callable[[str], str | None] = lambda nodeid: None,
) -> list[TestVerdict]:
    """Verdicts for every test either run saw, in the order they ran.

    ``expected(nodeid)`` is the manifest's reason when the test is a known
    incompatibility (``Manifest.expected_reason``), else None.
    """
    runs = [run for run in (plain, patched) if run is not None]
    verdicts: dict[str, TestVerdict] = {}
    for run in runs:
        for nodeid, reason in run.deselected.items():
            verdicts[nodeid] = TestVerdict(
                nodeid=nodeid,
                verdict="skipped",
                plain="deselected" if plain is not None else None,
                patched="deselected" if patched is not None else None,
                reason=f"deselected by the manifest: {reason}",
            )
    for run in runs:
        for nodeid in run.records:
            if nodeid in verdicts:
                continue
            verdicts[nodeid] = judge(
                nodeid, _record(plain, nodeid), _record(patched, nodeid), expected(nodeid)
            )
    return list(verdicts.values())


def _record(run: ModeRun | None, nodeid: str) -> TestRecord | None:
    """The test's record in ``run``; None when that mode was not run at all."""
    if run is None:
        return None
    return run.records.get(nodeid) or TestRecord(nodeid=nodeid, outcome=NOT_RUN)


def confirm(verdict: TestVerdict, plain: TestRecord | None, patched: TestRecord | None) -> None:
    """Apply the re-run of a suspected regression: confirmed, or flaky."""
    verdict.rerun = {
        "plain": plain.outcome if plain else "not run",
        "patched": patched.outcome if patched else "not run",
    }
    if plain is None or patched is None:
        return  # the re-run stopped before this test: it stays a regression, unconfirmed
    if plain.outcome == "passed" and patched.outcome in BAD:
        return  # the same again: a regression
    verdict.verdict = "flaky"
    verdict.flaky = True
