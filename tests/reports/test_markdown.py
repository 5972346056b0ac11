"""The Markdown summary: pinned by a golden file, sized for a PR comment, inert."""

from __future__ import annotations

import os
import re
from pathlib import Path

from greenpatch.reports.markdown import (
    COLLAPSE_AFTER,
    GITHUB_COMMENT_LIMIT,
    md_code,
    render_markdown,
)
from greenpatch.reports.merge import Entry, Matrix, merge
from greenpatch.reports.model import TestVerdict
from tests.reports import samples

GOLDEN = Path(__file__).parent / "golden" / "summary.md"
UPDATE = "GREENPATCH_UPDATE_GOLDEN"


def test_summary_matches_the_golden_file() -> None:
    text = render_markdown(samples.golden_matrix())
    if os.environ.get(UPDATE):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8"), (
        f"the Markdown summary changed: if that is intended, re-run with {UPDATE}=1 "
        f"and review the diff of {GOLDEN}"
    )


def _cells(line: str) -> list[str]:
    """A GFM table row split as GitHub splits it: on pipes not escaped with a backslash."""
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def test_every_table_row_has_as_many_cells_as_its_header() -> None:
    text = render_markdown(
        merge([Entry(samples.hostile_result()), *map(Entry, samples.matrix_results())])
    )
    widths: list[int] = []
    for line in text.splitlines():
        if line.startswith("|"):
            widths.append(len(_cells(line)))
        elif widths:
            assert len(set(widths)) == 1, f"ragged table above: {line!r}"
            widths = []


def test_untrusted_text_only_appears_inside_code_spans() -> None:
    text = render_markdown(merge([Entry(samples.hostile_result())]))
    outside = re.sub(r"(`+)(?:(?!\1).)+?\1", "", text)  # drop every code span
    for dangerous in ("<script", "<img", "@octocat", "@team", "<b>", "#1"):
        assert dangerous not in outside
    assert "\x1b" not in text and "\x00" not in text


def test_control_characters_are_shown_not_dropped() -> None:
    assert md_code("\x1b[31mred\x00") == "`\\x1b[31mred\\x00`"


def test_code_span_survives_backticks_and_pipes() -> None:
    assert md_code("a`b") == "``a`b``"
    assert md_code("`edge`") == "`` `edge` ``"
    assert md_code("x|y") == "`x\\|y`"
    assert md_code("x|y", in_table=False) == "`x|y`"
    assert md_code("line\none") == "`line one`"
    assert md_code("") == ""


def test_partial_result_is_marked_incomplete_in_its_cell() -> None:
    text = render_markdown(merge([Entry(samples.partial_result())]))
    row = next(line for line in text.splitlines() if line.startswith("| requests"))
    assert "⚠️ incomplete" in row
    assert "✅" not in row
    assert "the run was cut short" in text


def test_not_run_result_is_never_shown_as_passed() -> None:
    text = render_markdown(merge([Entry(samples.not_run_result())]))
    row = next(line for line in text.splitlines() if line.startswith("| redis"))
    assert "⏹️ not run" in row and "✅" not in row
    assert "no redis-server on PATH" in text


def test_result_without_tests_is_not_a_pass() -> None:
    text = render_markdown(merge([Entry(samples.empty_result())]))
    assert "⏹️ no tests" in text and "✅" not in text


def test_no_results_renders_a_short_summary() -> None:
    text = render_markdown(Matrix())
    assert "No results to show." in text
    assert "|" not in text


def _many_regressions(count: int, error_size: int) -> Matrix:
    result = samples.regressing_result()
    result.tests = [
        TestVerdict(
            nodeid=f"tests/test_big.py::test_{index}[{'p' * 300}]",
            verdict="regression",
            plain="passed",
            patched="failed",
            error="E   " + "x" * error_size,
        )
        for index in range(count)
    ]
    result.hot_spots = [
        {"frame": f"/x/{'d' * 200}/f.py:{i} in g", "count": i, "worst": i / 10, "tests": []}
        for i in range(500)
    ]
    result.count_verdicts()
    return merge([Entry(result)])


def test_long_sections_are_collapsed() -> None:
    text = render_markdown(_many_regressions(COLLAPSE_AFTER + 1, 10))
    assert f"<details><summary>Show {COLLAPSE_AFTER + 1}</summary>" in text
    short = render_markdown(_many_regressions(COLLAPSE_AFTER, 10))
    assert "### ❌ Regressions (5)\n\n| result" in short


def test_thousands_of_regressions_still_fit_in_one_comment() -> None:
    text = render_markdown(_many_regressions(2000, 5_000))
    assert len(text) < GITHUB_COMMENT_LIMIT
    assert "### ❌ Regressions (2000)" in text
    assert "… and 1950 more: see the HTML report" in text


def test_unreadable_files_and_merge_notes_are_listed() -> None:
    text = render_markdown(samples.golden_matrix())
    assert "### ⛔ Unreadable result files (1)" in text
    assert "reports/redis-5.2.1-py3.9.json: not valid JSON" in text
    assert "### Merge notes (1)" in text
