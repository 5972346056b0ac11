"""JUnit XML: the results as test reports any CI shows natively.

One ``<testsuite>`` per result, one ``<testcase>`` per library test:

=================================  ==========================================
verdict                            JUnit
=================================  ==========================================
passed, fixed, flaky               passed (flaky/fixed say so in system-out)
regression                         ``<failure type="regression">``, or
                                   ``<error>`` when the patched run hung or
                                   crashed
hung, crashed                      ``<error>`` (it did so plain, too)
skipped                            ``<skipped>`` with the reason
failed_both, expected,             ``<skipped>``: not greenpatch's to judge,
needs_network                      with the reason
=================================  ==========================================

Two more test cases per result carry what is not a library test, so that a CI
shows it beside the rest: ``(greenpatch) suite ran to completion`` (an error
when the suite did not run, was cut short, or ran one mode only) and
``(greenpatch) cooperation probe`` (a failure when the library blocked the loop,
an error when the probe failed, skipped with "cooperation not measured" when no
probe ran -- always there, so that a missing probe is never a silent pass).

In a result that did not compare both runs to the end (cut short, or one mode
only), a test is never reported as passed: what passed is ``<skipped>`` with
"not compared", since the other run never judged it.

``classname`` is ``<suite>-<version>-py<X.Y>`` with dots made underscores --
CIs split class names at dots into packages -- and ``name`` is the pytest node
id, which is what one pastes to re-run the test.

XML 1.0 cannot carry most control characters, and error output is full of them
(ANSI colours, NUL from a crash): every string goes through ``summary.visible``,
which writes them as ``\\xNN``, so the file stays well-formed and loses nothing.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from typing import Any

from greenpatch.reports.merge import Entry, Matrix
from greenpatch.reports.model import MODES, Result, TestVerdict
from greenpatch.reports.summary import (
    cooperation_of,
    cooperation_text,
    error_excerpt,
    outcome_change,
    result_title,
    visible,
)

__all__ = ["render_junit"]

_PASSING = ("passed", "fixed", "flaky")
_NOT_JUDGED = {
    "skipped": "skipped",
    "failed_both": "fails plain too: not greenpatch's to judge",
    "expected": "a known incompatibility listed in the manifest",
    "needs_network": "needs the network (refused by the harness's network guard)",
}
_HARNESS = "(greenpatch)"


def _element(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, tag, {key: visible(value) for key, value in attrs.items()})
    if text:
        child.text = visible(text)
    return child


def _classname(result: Result, python: str) -> str:
    return f"{result.suite}-{result.version}-py{python}".replace(".", "_")


def _seconds(value: float | None) -> str:
    return f"{value or 0.0:.3f}"


def _testcase(parent: ET.Element, classname: str, test: TestVerdict, compared: bool) -> ET.Element:
    duration = test.duration_patched if test.duration_patched is not None else test.duration_plain
    case = _element(parent, "testcase", classname=classname, name=test.nodeid)
    case.set("time", _seconds(duration))
    change = outcome_change(test)
    if test.verdict == "regression":
        hung = test.patched in ("hung", "crashed")
        _element(
            case,
            "error" if hung else "failure",
            error_excerpt(test, max_lines=200, max_chars=20_000),
            type=f"regression ({test.patched})" if hung else "regression",
            message=f"greenpatch regression: {change}",
        )
        if test.stacks:
            _element(case, "system-err", test.stacks)
    elif test.verdict in ("hung", "crashed"):
        _element(
            case,
            "error",
            error_excerpt(test, max_lines=200, max_chars=20_000),
            type=test.verdict,
            message=f"{test.verdict} (not a greenpatch regression: {change})",
        )
    elif test.verdict in _NOT_JUDGED:
        why = _NOT_JUDGED[test.verdict]
        if test.verdict == "skipped":
            message = test.reason or why
        else:
            message = f"{why}: {test.reason}" if test.reason else why
        _element(case, "skipped", message=f"{message} ({change})"[:2000])
    elif not compared and test.verdict in _PASSING:
        # Plain passed and the patched run never got to it (or was never asked
        # for): a green test case here would be a claim nobody checked.
        _element(
            case, "skipped", message=f"not compared: the result is partial or one-mode ({change})"
        )
    elif test.verdict in ("fixed", "flaky"):
        _element(case, "system-out", f"{test.verdict}: {change}")
    return case


def _harness_cases(parent: ET.Element, classname: str, result: Result) -> None:
    ran = _element(
        parent, "testcase", classname=classname, name=f"{_HARNESS} suite ran to completion"
    )
    ran.set("time", "0.000")
    if result.not_run_reason:
        _element(ran, "error", result.reproduce, type="not run", message=result.not_run_reason)
    elif result.incomplete:
        _element(
            ran,
            "error",
            "\n".join(result.notes),
            type="incomplete",
            message="the run was interrupted or ran out of time: the counts are partial",
        )
    elif not result.tests:
        _element(
            ran, "error", result.reproduce, type="no tests", message="the result lists no test"
        )
    elif not result.compared():
        missing = [m for m in MODES if m not in result.modes or not result.modes[m].ran]
        _element(
            ran,
            "error",
            result.reproduce,
            type="not compared",
            message=f"the {' and '.join(missing)} run did not happen: nothing was compared",
        )
    probe = _element(parent, "testcase", classname=classname, name=f"{_HARNESS} cooperation probe")
    probe.set("time", _seconds(float((result.probe or {}).get("wall") or 0.0)))
    cooperation = cooperation_of(result)
    if cooperation == "probe_error":
        _element(probe, "error", type="probe error", message=cooperation_text(result))
    elif cooperation == "blocking":
        _element(probe, "failure", type="blocking", message=cooperation_text(result))
    elif cooperation == "not_measured":
        _element(probe, "skipped", message=cooperation_text(result))


def _timestamp(text: str) -> str | None:
    """JUnit wants a local ISO time without offset; the harness writes UTC with one."""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds")


def _testsuite(parent: ET.Element, entry: Entry) -> dict[str, int]:
    result = entry.result
    classname = _classname(result, entry.key.python)
    if result.without:
        # Two results of one suite (patched, patched without a plugin) must
        # not share their test cases' names in one JUnit file.
        classname += "".join(f"-without-{flag}" for flag in result.without)
    suite = _element(parent, "testsuite", name=result_title(result))
    stamp = _timestamp(result.started_at)
    if stamp:
        suite.set("timestamp", stamp)
    properties = _element(suite, "properties")
    for name, value in (
        ("library", result.library),
        ("version", result.version),
        ("python", result.python),
        ("platform", result.platform),
        ("greenpatch_version", result.greenpatch_version),
        ("greenpatch_path", result.greenpatch_path),
        ("cooperation", cooperation_of(result)),
        ("tested_tree", " ".join((result.source or {}).values())),
        ("incomplete", "true" if result.incomplete else "false"),
        ("reproduce", result.reproduce),
        ("result_file", entry.source),
    ):
        _element(properties, "property", name=name, value=value)
    if result.without:
        _element(properties, "property", name="without", value=" ".join(result.without))
    compared = result.compared()
    for test in result.tests:
        _testcase(suite, classname, test, compared)
    _harness_cases(suite, classname, result)
    out = [_hot_spot_line(spot) for spot in result.hot_spots]
    if out:
        _element(suite, "system-out", "loop-stall hot spots:\n" + "\n".join(out))
    cases = suite.findall("testcase")
    totals = {
        "tests": len(cases),
        "failures": sum(1 for case in cases if case.find("failure") is not None),
        "errors": sum(1 for case in cases if case.find("error") is not None),
        "skipped": sum(1 for case in cases if case.find("skipped") is not None),
    }
    for name, count in totals.items():
        suite.set(name, str(count))
    time = sum(float(case.get("time") or 0.0) for case in cases)
    suite.set("time", _seconds(time))
    return totals


def _hot_spot_line(spot: dict[str, Any]) -> str:
    count = int(spot.get("count") or 0)
    return (
        f"  {spot.get('frame', '?')}: {count} stall{'' if count == 1 else 's'}, "
        f"worst {float(spot.get('worst') or 0.0):.2f} s"
    )


def _problems_suite(parent: ET.Element, matrix: Matrix) -> dict[str, int]:
    """Unreadable result files, as errors: a CI must not show a missing cell as green."""
    suite = _element(parent, "testsuite", name=f"{_HARNESS} unreadable result files")
    for problem in matrix.problems:
        case = _element(suite, "testcase", classname="greenpatch", name=problem.path)
        case.set("time", "0.000")
        _element(case, "error", type="unreadable result", message=problem.problem)
    count = len(matrix.problems)
    totals = {"tests": count, "failures": 0, "errors": count, "skipped": 0}
    for name, value in totals.items():
        suite.set(name, str(value))
    suite.set("time", "0.000")
    return totals


def render_junit(matrix: Matrix) -> str:
    """The whole matrix as one JUnit XML document (a ``<testsuites>`` root)."""
    root = ET.Element("testsuites", {"name": "greenpatch compat"})
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    counted = [_testsuite(root, entry) for entry in matrix.entries]
    if matrix.problems:
        counted.append(_problems_suite(root, matrix))
    for suite_totals in counted:
        for name, count in suite_totals.items():
            totals[name] += count
    for name, count in totals.items():
        root.set(name, str(count))
    root.set("time", _seconds(sum(float(s.get("time") or 0.0) for s in root)))
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
