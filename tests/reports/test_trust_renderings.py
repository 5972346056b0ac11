"""Issue 13, items 3 and 4: no rendering shows as a pass what was not proven.

- a result without a probe says "cooperation not measured" everywhere (JSON,
  Markdown, HTML, JUnit) and its matrix cell differs from a measured pass;
- a result that compared nothing -- cut short, or one mode only -- is never
  shown as a pass (no ✅, no green cell, no passed JUnit test case).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from greenpatch.reports.html import render_html
from greenpatch.reports.junit import render_junit
from greenpatch.reports.markdown import render_markdown
from greenpatch.reports.merge import Entry, merge
from greenpatch.reports.model import ModeSummary, Result, TestVerdict, read_result, write_result
from greenpatch.reports.summary import cell_verdict
from tests.reports import samples


def _zero_passed_incomplete() -> Result:
    """The run of the issue: interrupted before the patched run judged anything."""
    result = samples.partial_result()
    result.tests = [
        TestVerdict(
            nodeid="tests/test_x.py::test_a",
            verdict="skipped",
            plain="passed",
            patched=None,
            reason="did not run in the patched run",
        )
    ]
    result.count_verdicts()
    return result


def _row(markdown: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith("| requests"))


def _cases(xml: str) -> dict[str, ET.Element]:
    return {case.get("name", ""): case for case in ET.fromstring(xml).iter("testcase")}


# -- item 3: cooperation not measured ------------------------------------------------
def test_json_says_cooperation_not_measured(tmp_path: Path) -> None:
    path = write_result(tmp_path / "r.json", samples.unmeasured_result())
    data = json.loads(path.read_text())
    assert data["probe"] is None
    assert data["cooperation"] == "not_measured"
    assert data["cooperation_reason"] == "the manifest has no [probe]"


def test_a_document_without_the_field_reads_as_not_measured(tmp_path: Path) -> None:
    # Written before the field existed: the reader decides from the probe.
    data = samples.unmeasured_result().to_dict()
    del data["cooperation"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert read_result(tmp_path / "old.json").cooperation == "not_measured"


def test_markdown_cell_differs_from_a_measured_pass_and_says_why() -> None:
    measured = _row(render_markdown(merge([Entry(samples.passing_result())])))
    text = render_markdown(merge([Entry(samples.unmeasured_result())]))
    unmeasured = _row(text)
    assert "✅" in measured
    assert "✅" not in unmeasured
    assert "cooperation not measured" in unmeasured
    assert "the manifest has no [probe]" in text


def test_html_says_cooperation_not_measured_and_is_not_green() -> None:
    page = render_html(merge([Entry(samples.unmeasured_result())]))
    assert "verdict-pass" not in page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert "cooperation not measured: the manifest has no [probe]" in page


def test_junit_always_has_the_probe_case_skipped_when_not_measured() -> None:
    cases = _cases(render_junit(merge([Entry(samples.unmeasured_result())])))
    probe = cases["(greenpatch) cooperation probe"]
    skipped = probe.find("skipped")
    assert skipped is not None
    assert "cooperation not measured" in skipped.get("message", "")


def test_cell_kinds_distinguish_measured_and_unmeasured() -> None:
    assert cell_verdict(samples.passing_result()).kind == "pass"
    assert cell_verdict(samples.unmeasured_result()).kind == "unmeasured"


# -- item 4: nothing compared is never a pass ----------------------------------------
@pytest.mark.parametrize(
    "make", [samples.partial_result, samples.plain_only_result, _zero_passed_incomplete]
)
def test_incomplete_or_one_mode_results_are_never_a_pass(make: object) -> None:
    assert callable(make)
    result = make()
    verdict = cell_verdict(result)
    assert verdict.kind not in ("pass", "unmeasured")
    matrix = merge([Entry(result)])
    markdown = render_markdown(matrix)
    assert "✅" not in markdown
    assert "**No regression**" not in markdown
    html_cells = render_html(matrix).split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert "verdict-pass" not in html_cells
    cases = _cases(render_junit(matrix))
    ran = cases["(greenpatch) suite ran to completion"]
    assert ran.find("error") is not None
    for name, case in cases.items():
        if not name.startswith("(greenpatch)"):
            # Every library test case says why it is not a pass.
            assert len(case), f"{name} is reported as passed"


def test_one_mode_result_says_what_did_not_run() -> None:
    result = samples.plain_only_result()
    assert "not compared (plain run only)" in _row(render_markdown(merge([Entry(result)])))
    result.modes["patched"] = ModeSummary(mode="patched", ran=False)
    assert cell_verdict(result).kind == "incomplete"
