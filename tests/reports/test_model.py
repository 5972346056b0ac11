"""The result document: round trip, atomic writes, and clear errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from greenpatch.reports import (
    SCHEMA_VERSION,
    ModeSummary,
    Result,
    ResultError,
    TestVerdict,
    read_result,
    write_result,
)


def _result() -> Result:
    result = Result(
        suite="demo",
        library="demo",
        version="1.0",
        python="3.11.7",
        platform="Linux-x86_64",
        greenpatch_version="0.1.0",
        modes={
            "plain": ModeSummary(mode="plain", ran=True, counts={"passed": 2}, duration=1.5),
            "patched": ModeSummary(mode="patched", ran=True, counts={"passed": 1, "failed": 1}),
        },
        tests=[
            TestVerdict(nodeid="t.py::a", verdict="passed", plain="passed", patched="passed"),
            TestVerdict(
                nodeid="t.py::b",
                verdict="regression",
                plain="passed",
                patched="failed",
                error="AssertionError",
                rerun={"plain": "passed", "patched": "failed"},
            ),
        ],
        hot_spots=[{"frame": "x.py:1 f", "count": 2, "worst": 0.3, "tests": [], "stack": ""}],
        probe={"factor": 19.0, "cooperative": True, "error": None},
        environment={"demo": "1.0"},
        reproduce="greenpatch compat run demo",
    )
    result.count_verdicts()
    return result


def test_write_then_read_gives_the_same_result(tmp_path: Path) -> None:
    original = _result()
    path = write_result(tmp_path / "out" / "demo.json", original)
    assert read_result(path) == original
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_count_verdicts_orders_by_verdict_list() -> None:
    assert _result().verdicts == {"passed": 1, "regression": 1}


def test_write_leaves_no_temp_file_behind(tmp_path: Path) -> None:
    write_result(tmp_path / "r.json", _result())
    write_result(tmp_path / "r.json", _result())
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_failed_write_keeps_the_old_document(tmp_path: Path) -> None:
    path = write_result(tmp_path / "r.json", _result())
    broken = _result()
    broken.probe = {"not json": object()}
    with pytest.raises(TypeError):
        write_result(path, broken)
    assert read_result(path) == _result()
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_truncated_document_names_the_file(tmp_path: Path) -> None:
    path = write_result(tmp_path / "r.json", _result())
    path.write_text(path.read_text()[:100])
    with pytest.raises(ResultError, match=r"r\.json: not valid JSON"):
        read_result(path)


def test_wrong_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    data = _result().to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(ResultError, match="schema_version"):
        read_result(path)


def test_missing_required_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    data = _result().to_dict()
    del data["library"]
    path.write_text(json.dumps(data))
    with pytest.raises(ResultError, match="missing key 'library'"):
        read_result(path)


def test_wrong_type_in_a_nested_test_is_named(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    data = _result().to_dict()
    data["tests"][1]["flaky"] = "yes"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultError, match=r"'tests\[1\]\.flaky' must be bool"):
        read_result(path)


def test_unknown_verdict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    data = _result().to_dict()
    data["tests"][0]["verdict"] = "great"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultError, match="verdict 'great'"):
        read_result(path)


def test_missing_file_is_a_result_error(tmp_path: Path) -> None:
    with pytest.raises(ResultError, match="cannot read"):
        read_result(tmp_path / "nope.json")


def test_non_object_document_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("[1, 2]")
    with pytest.raises(ResultError, match="expected a JSON object"):
        read_result(path)
