"""JUnit XML, read back with junitparser as a CI would read it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped, TestCase, TestSuite

from greenpatch.reports.junit import render_junit
from greenpatch.reports.merge import Entry, Matrix, merge
from greenpatch.reports.model import ResultError
from tests.reports import samples


def _parse(matrix: Matrix, tmp_path: Path) -> JUnitXml:
    path = tmp_path / "junit.xml"
    path.write_text(render_junit(matrix), encoding="utf-8")
    return JUnitXml.fromfile(str(path))


def _suites(xml: JUnitXml) -> dict[str, TestSuite]:
    return {suite.name: suite for suite in xml}


def _cases(suite: TestSuite) -> dict[str, TestCase]:
    return {case.name: case for case in suite}


def _kinds(case: TestCase) -> list[type]:
    return [type(result) for result in case.result]


@pytest.fixture
def xml(tmp_path: Path) -> JUnitXml:
    return _parse(merge(map(Entry, samples.matrix_results())), tmp_path)


def test_one_suite_per_result_and_one_case_per_library_test(xml: JUnitXml) -> None:
    suites = _suites(xml)
    assert sorted(suites) == [
        "redis 5.2.1 on Python 3.11.7",
        "redis 5.2.1 on Python 3.12.8",
        "redis 5.2.1 on Python 3.13.1",
        "requests 2.32.3 on Python 3.11.7",
        "requests 2.32.3 on Python 3.12.8",
    ]
    redis = _cases(suites["redis 5.2.1 on Python 3.11.7"])
    library_tests = [name for name in redis if not name.startswith("(greenpatch)")]
    assert len(library_tests) == len(samples.regressing_result().tests)
    assert {case.classname for case in redis.values()} == {"redis-5_2_1-py3_11"}


def test_regressions_are_failures_and_hung_regressions_are_errors(xml: JUnitXml) -> None:
    redis = _cases(_suites(xml)["redis 5.2.1 on Python 3.11.7"])
    failed = redis["tests/test_connection.py::test_read_timeout[hiredis]"]
    assert _kinds(failed) == [Failure]
    [failure] = failed.result
    assert failure.type == "regression"
    assert (
        failure.message
        == "greenpatch regression: passed plain, failed patched (re-run: passed, failed)"
    )
    assert "Timeout reading from socket" in failure.text
    hung = redis["tests/test_pubsub.py::TestPubSub::test_get_message_timeout"]
    assert _kinds(hung) == [Error]
    assert hung.result[0].type == "regression (hung)"
    assert "Thread 0x7f" in hung.system_err


def test_skipped_and_not_judged_tests_are_skipped_with_the_reason(xml: JUnitXml) -> None:
    redis = _cases(_suites(xml)["redis 5.2.1 on Python 3.11.7"])
    deselected = redis["tests/test_cluster.py::test_init"]
    assert _kinds(deselected) == [Skipped]
    assert "needs a Redis Cluster" in deselected.result[0].message
    expected = redis["tests/test_connect.py::test_tcp_keepalive"]
    assert _kinds(expected) == [Skipped]
    assert "TCP_KEEPIDLE is not cooperative yet" in expected.result[0].message
    assert _kinds(redis["tests/test_lock.py::test_blocking_timeout"]) == []  # flaky: passed
    assert redis["tests/test_commands.py::TestRedisCommands::test_ping"].is_passed


def test_counts_on_suites_and_root_add_up(xml: JUnitXml) -> None:
    for suite in xml:
        cases = list(suite)
        assert suite.tests == len(cases)
        assert suite.failures == sum(Failure in _kinds(case) for case in cases)
        assert suite.errors == sum(Error in _kinds(case) for case in cases)
        assert suite.skipped == sum(Skipped in _kinds(case) for case in cases)
    assert xml.tests == sum(suite.tests for suite in xml)
    assert xml.failures == sum(suite.failures for suite in xml)


def test_not_run_and_incomplete_results_are_errors_ci_can_see(xml: JUnitXml) -> None:
    suites = _suites(xml)
    not_run = _cases(suites["redis 5.2.1 on Python 3.13.1"])["(greenpatch) suite ran to completion"]
    assert _kinds(not_run) == [Error]
    assert "no redis-server on PATH" in not_run.result[0].message
    partial = _cases(suites["requests 2.32.3 on Python 3.12.8"])
    assert partial["(greenpatch) suite ran to completion"].result[0].type == "incomplete"
    assert _kinds(partial["(greenpatch) cooperation probe"]) == [Error]
    complete = _cases(suites["requests 2.32.3 on Python 3.11.7"])
    assert complete["(greenpatch) suite ran to completion"].is_passed
    assert complete["(greenpatch) cooperation probe"].is_passed


def test_a_blocking_probe_is_a_failure(xml: JUnitXml) -> None:
    probe = _cases(_suites(xml)["redis 5.2.1 on Python 3.12.8"])["(greenpatch) cooperation probe"]
    assert _kinds(probe) == [Failure]
    assert probe.result[0].message == "factor 1.0 of 20 concurrent calls: blocking"


def test_hostile_text_keeps_the_file_well_formed(tmp_path: Path) -> None:
    text = render_junit(merge([Entry(samples.hostile_result())]))
    ET.fromstring(text.encode("utf-8"))  # raises on anything not well-formed
    xml = _parse(merge([Entry(samples.hostile_result())]), tmp_path)
    [suite] = list(xml)
    case = _cases(suite)[samples.HOSTILE_ID]
    assert "<script>document.title='pwned'</script>" in case.result[0].text
    assert "\\x1b[31mred" in case.result[0].text and "\\x00 nul" in case.result[0].text


def test_unreadable_files_become_errors(tmp_path: Path) -> None:
    matrix = merge([], [ResultError("reports/x.json", "empty file")])
    [suite] = list(_parse(matrix, tmp_path))
    [case] = list(suite)
    assert case.name == "reports/x.json" and case.result[0].message == "empty file"


def test_empty_matrix_is_a_valid_empty_report(tmp_path: Path) -> None:
    xml = _parse(Matrix(), tmp_path)
    assert list(xml) == [] and xml.tests == 0


def test_result_properties_are_recorded(xml: JUnitXml) -> None:
    suite = _suites(xml)["redis 5.2.1 on Python 3.11.7"]
    properties = {p.name: p.value for p in suite.properties()}
    assert properties["reproduce"] == "greenpatch compat run redis --python 3.11"
    assert properties["incomplete"] == "false"
    assert suite.timestamp == "2026-11-20T10:00:00"


def test_a_result_without_tests_is_an_error_not_a_green_suite(tmp_path: Path) -> None:
    [suite] = list(_parse(merge([Entry(samples.empty_result())]), tmp_path))
    [case, probe] = list(suite)
    assert case.name == "(greenpatch) suite ran to completion"
    assert _kinds(case) == [Error] and case.result[0].type == "no tests"
    # No probe ran: the probe case says so rather than being left out.
    assert probe.name == "(greenpatch) cooperation probe"
    assert _kinds(probe) == [Skipped]
    assert "cooperation not measured" in probe.result[0].message
