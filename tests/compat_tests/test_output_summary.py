"""The terminal summary: what a user learns without opening the result JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

try:
    from rich.console import Console
except ImportError:  # pragma: no cover - the compat extra is not installed
    pytest.skip("the summary needs the compat extra (rich)", allow_module_level=True)

from greenpatch.compat_tests.display import print_summary, status
from greenpatch.reports import ModeSummary, Result, TestVerdict


def make_result(**changes: Any) -> Result:
    result = Result(
        suite="demo",
        library="demo",
        version="1.0",
        python="3.11.7",
        platform="x",
        greenpatch_version="0",
        modes={
            "plain": ModeSummary(mode="plain", ran=True, counts={"passed": 3}, duration=1.0),
            "patched": ModeSummary(mode="patched", ran=True, counts={"passed": 3}, duration=1.0),
        },
        tests=[TestVerdict(nodeid=f"t.py::test_{n}", verdict="passed") for n in range(3)],
        verdicts={"passed": 3},
        probe={"concurrency": 20, "factor": 19.5, "cooperative": True, "error": None},
    )
    for name, value in changes.items():
        setattr(result, name, value)
    return result


def render(results: list[tuple[Result, Path]], width: int = 100) -> str:
    console = Console(record=True, width=width, color_system=None)
    print_summary(console, results)
    return console.export_text()


def spot(frame: str, worst: float, total: float, kind: str, count: int = 1) -> dict[str, Any]:
    return {
        "frame": frame,
        "count": count,
        "worst": worst,
        "total": total,
        "tests": ["t.py::test_x"],
        "stack": [],
        "kind": kind,
        "kinds": {kind: count},
    }


def test_summary_names_the_top_hot_spots_with_place_function_worst_total_and_kind() -> None:
    spots = [
        spot("/src/demo/client.py:41 in read_reply", 0.75, 2.5, "blocked", count=4),
        spot("/src/demo/codec.py:12 in encode", 0.31, 0.31, "cpu"),
        *(spot(f"/src/demo/m{n}.py:{n} in f{n}", 0.2, 0.2, "cpu") for n in range(6)),
    ]
    text = render([(make_result(hot_spots=spots), Path("reports/demo.json"))])
    lines = text.splitlines()
    first = next(line for line in lines if "client.py:41" in line)
    assert "/src/demo/client.py:41 in read_reply" in first
    assert "0.750 s worst" in first
    assert "2.500 s total" in first
    assert "4x" in first
    assert "[blocked]" in first
    assert any("codec.py:12 in encode" in line and "[cpu]" in line for line in lines)
    # The top five, and a pointer to the rest.
    assert sum("/src/demo/m" in line for line in lines) == 3
    assert "3 more in the result file" in text
    # Each kind shown comes with what to do about it.
    assert "a C client on its socket" in text
    assert "move the work to a thread" in text


def test_an_unscheduled_stall_is_explained_as_not_the_librarys_doing() -> None:
    spots = [
        spot("<the process was not scheduled: not the library's doing>", 1.0, 1.0, "unscheduled")
    ]
    result = make_result(hot_spots=spots)
    text = render([(result, Path("r.json"))])
    assert "[unscheduled]" in text
    assert "not the library's doing" in text
    assert status(result) == ("PASS", "green")  # such a stall does not count against it


def test_hung_and_crashed_tests_are_counted_apart_from_failed_ones() -> None:
    patched = ModeSummary(
        mode="patched",
        ran=True,
        counts={"passed": 5, "failed": 1, "error": 1, "hung": 2, "crashed": 1, "skipped": 1},
        duration=9.0,
    )
    result = make_result(modes={"plain": make_result().modes["plain"], "patched": patched})
    text = render([(result, Path("r.json"))], width=200)
    assert "5 passed, 2 failed, 2 hung, 1 crashed, 1 skipped" in text


def test_the_full_result_path_is_printed_on_a_100_column_terminal() -> None:
    path = Path("/home/someone/projects/a-rather-long-project-name/reports") / (
        "tutorial_lib-0.1.dev123+g1234567-py3.11.json"
    )
    text = render([(make_result(), path)], width=100)
    assert f"result: {path}" in text.splitlines()


def test_no_probe_says_cooperation_not_measured_and_is_not_a_pass() -> None:
    result = make_result(probe=None)
    text = render([(result, Path("r.json"))], width=200)
    assert "cooperation not measured" in text
    assert status(result)[0] == "NO REGRESSION, cooperation not measured"
    assert "PASS" not in text


@pytest.mark.parametrize(
    "changes",
    [
        {"incomplete": True},
        {"incomplete": True, "tests": []},
        {"modes": {"plain": ModeSummary(mode="plain", ran=True, counts={"passed": 3})}},
        {
            "modes": {
                "plain": ModeSummary(mode="plain", ran=True, counts={"passed": 3}),
                "patched": ModeSummary(mode="patched", ran=False),
            }
        },
        {"tests": []},
        {"not_run_reason": "no redis-server"},
    ],
    ids=[
        "incomplete",
        "incomplete-no-tests",
        "plain-only",
        "patched-not-run",
        "no-tests",
        "not-run",
    ],
)
def test_a_result_that_proves_nothing_is_never_shown_as_a_pass(changes: dict[str, Any]) -> None:
    result = make_result(**changes)
    label, _style = status(result)
    assert "PASS" not in label
    text = render([(result, Path("r.json"))], width=200)
    assert "PASS" not in text


def test_a_complete_result_without_regressions_is_a_pass_and_stalls_are_mentioned() -> None:
    assert status(make_result()) == ("PASS", "green")
    stalled = make_result(hot_spots=[spot("/src/a.py:1 in f", 0.2, 0.2, "cpu")])
    assert status(stalled)[0] == "PASS, loop stalls at 1 site(s)"


def test_statuses_say_what_is_missing() -> None:
    plain_only = make_result(modes={"plain": make_result().modes["plain"]})
    assert status(plain_only)[0] == "INCOMPLETE: not compared (plain run only)"
    assert status(make_result(incomplete=True))[0] == "INCOMPLETE: incomplete (3 passed so far)"
    regression = make_result(
        tests=[TestVerdict(nodeid="t.py::a", verdict="regression")], incomplete=True
    )
    assert status(regression) == ("REGRESSION: 1 regression, INCOMPLETE", "red")


def test_stalls_outside_any_test_come_apart_and_do_not_count_against_the_library() -> None:
    # pytest compiling the test modules at collection holds the loop for
    # seconds: it is listed apart, after the stalls seen while tests ran.
    collecting = spot("/venv/_pytest/assertion/rewrite.py:810 in helper", 5.4, 15.2, "cpu")
    collecting["tests"] = []
    in_a_test = spot("/src/demo/client.py:41 in read_reply", 0.3, 0.3, "blocked")
    result = make_result(hot_spots=[collecting, in_a_test])
    lines = render([(result, Path("r.json"))], width=160).splitlines()
    mine = next(n for n, line in enumerate(lines) if "client.py:41" in line)
    apart = next(n for n, line in enumerate(lines) if "outside any test" in line)
    assert mine < apart
    assert "rewrite.py:810" in lines[apart] and "5.400 s" in lines[apart]
    assert status(result)[0] == "PASS, loop stalls at 1 site(s)"
    only_outside = make_result(hot_spots=[collecting])
    assert status(only_outside) == ("PASS", "green")
    assert "none while a test ran" in render([(only_outside, Path("r.json"))], width=160)


def test_summary_row_of_a_run_without_a_patch_says_what_was_left_out() -> None:
    text = render(
        [
            (make_result(), Path("demo.json")),
            (make_result(without=["zmq"]), Path("demo-without-zmq.json")),
        ],
        width=160,
    )
    assert text.count("demo 1.0") == 2
    assert text.count("patched without zmq") == 1
