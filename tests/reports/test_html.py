"""The HTML report: self-contained, escaped, and showing every part of a result."""

from __future__ import annotations

import re

import pytest

from greenpatch.reports.html import render_html
from greenpatch.reports.merge import Entry, Matrix, merge
from greenpatch.reports.model import ResultError
from tests.reports import samples
from tests.reports.dom import Node, parse


def _page(*results: object, problems: list[ResultError] | None = None) -> Node:
    matrix = merge([Entry(r, f"reports/{i}.json") for i, r in enumerate(results)], problems or [])
    return parse(render_html(matrix))


@pytest.fixture(scope="module")
def full_page() -> Node:
    return _page(*samples.matrix_results(), samples.hostile_result())


def test_page_loads_nothing_and_runs_nothing(full_page: Node) -> None:
    tags = {node.tag for node in full_page.iter()}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "base", "form"}
    for node in full_page.iter():
        assert not any(name.startswith("on") for name in node.attrs), node
        assert "src" not in node.attrs
        href = node.attrs.get("href")
        assert href is None or href.startswith("#")
    [csp] = [m for m in full_page.find_all("meta") if m.attrs.get("http-equiv")]
    assert csp.attrs["content"].startswith("default-src 'none'")


def test_untrusted_text_is_shown_as_text(full_page: Node) -> None:
    [hostile] = [s for s in full_page.find_all("section", "result") if "evil" in s.text]
    assert samples.HOSTILE_ID in hostile.text
    assert "<script>document.title='pwned'</script>" in hostile.text
    assert "<script>alert(5)</script>" in hostile.text  # a note
    assert "\\x1b[31mred" in hostile.text and "\\x00 nul" in hostile.text


def test_control_characters_never_reach_the_file() -> None:
    text = render_html(merge([Entry(samples.hostile_result())]))
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text)


def test_matrix_has_one_cell_per_python_with_a_verdict_class(full_page: Node) -> None:
    [table] = full_page.find_all("table", "matrix")
    rows = {row.find_all("th")[0].text: row for row in table.find_all("tr")[1:]}
    assert list(rows) == ["evil", "redis", "requests"]
    redis = {cell.attrs["data-python"]: cell for cell in rows["redis"].find_all("td", "cell")}
    assert redis["3.11"].classes >= {"verdict-regression"}
    assert redis["3.11"].text == "2 regressions"
    assert "verdict-blocking" in redis["3.12"].classes
    assert "verdict-not-run" in redis["3.13"].classes
    requests = {c.attrs["data-python"]: c for c in rows["requests"].find_all("td", "cell")}
    assert "empty" in requests["3.13"].classes


def test_each_cell_links_to_its_result_section(full_page: Node) -> None:
    links = [a.attrs["href"] for a in full_page.find_all("a") if a.attrs["href"] != "#"]
    assert links
    for href in links:
        target = full_page.by_id(href[1:])
        assert target is not None and "result" in target.classes


def test_partial_result_is_marked_incomplete_in_cell_and_section() -> None:
    page = _page(samples.partial_result())
    [cell] = page.find_all("td", "cell")
    assert "incomplete" in cell.classes and "incomplete" in cell.text
    [section] = page.find_all("section", "result")
    assert "Incomplete:" in section.text
    assert "probe error: probe interrupted" in section.text


def test_regressions_show_id_outcomes_and_excerpt() -> None:
    page = _page(samples.regressing_result())
    [section] = page.find_all("section", "regressions")
    tests = section.find_all("article", "test")
    assert [t.find_all("code")[0].text for t in tests] == [
        "tests/test_connection.py::test_read_timeout[hiredis]",
        "tests/test_pubsub.py::TestPubSub::test_get_message_timeout",
    ]
    assert "passed plain, failed patched (re-run: passed, failed)" in tests[0].text
    assert "redis.exceptions.TimeoutError" in tests[0].find_all("pre")[0].text
    assert "Stacks when it hung" in tests[1].text


def test_hot_spots_show_their_stack_as_a_traceback() -> None:
    page = _page(samples.regressing_result())
    [spots] = page.find_all("section", "hot-spots")
    stack = spots.find_all("pre")[0].text
    assert 'File "/env/lib/python3.11/site-packages/redis/connection.py", line 512' in stack
    assert "response = self._parser.read_response()" in stack
    assert "open" in spots.find_all("details")[0].attrs  # the worst one is unfolded


def test_probe_chart_bars_are_proportional_and_errors_have_no_bar() -> None:
    page = _page(samples.passing_result(), samples.blocking_result(), samples.partial_result())
    [svg] = page.find_all("svg")
    widths = [float(rect.attrs["width"]) for rect in svg.find_all("rect")]
    assert len(widths) == 2  # the probe that failed has no bar
    blocking, cooperative = sorted(widths)
    assert blocking / cooperative == pytest.approx(0.98 / 19.05, rel=0.02)
    assert "probe error: probe interrupted" in svg.text
    assert [r.attrs["class"] for r in svg.find_all("rect")] == ["bar blocking", "bar cooperative"]


def test_run_metadata_is_shown() -> None:
    page = _page(samples.regressing_result())
    [meta] = page.find_all("dl", "meta")
    for text in ("Linux-6.1.0", "0.1.0", "2026-11-20T10:00:00+00:00", "reports/0.json"):
        assert text in meta.text
    assert "greenpatch compat run redis --python 3.11" in meta.text
    environment = page.find_all("table", "environment")[0]
    assert "greenlet" in environment.text and "3.1.1" in environment.text


def test_not_run_and_empty_results_render() -> None:
    page = _page(samples.not_run_result(), samples.empty_result())
    text = page.text
    assert "Not run: no redis-server on PATH" in text
    assert "No tests: the result lists no test" in text


def test_no_results_and_unreadable_files_render() -> None:
    page = parse(render_html(Matrix(problems=[ResultError("r/x.json", "empty file")])))
    assert "No results to show." in page.text
    problems = page.by_id("problems")
    assert problems is not None and "r/x.json: empty file" in problems.text


def test_merge_notes_are_shown() -> None:
    page = parse(render_html(samples.golden_matrix()))
    notes = page.by_id("merge-notes")
    assert notes is not None and "was given twice" in notes.text
