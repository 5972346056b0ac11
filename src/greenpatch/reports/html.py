"""The HTML report: one self-contained file (inline CSS and SVG, no script).

No CDN and no network: the file is read from a CI artifact, often offline, and
a Content-Security-Policy of ``default-src 'none'`` makes sure that nothing in
it -- a test id or an error excerpt crafted to look like markup -- can load or
run anything.  Everything dynamic is escaped by Jinja's autoescape; the
template (templates/report.html.j2) never marks a value ``|safe``.

Works without JavaScript: the matrix links to the per-result sections with
plain anchors and long things (stacks, environments) fold with <details>.
Readable in a narrow window: tables scroll sideways inside their own box, and
test ids and stacks wrap.

This module computes everything -- verdicts, excerpts, chart geometry -- so
the template only places values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import jinja2
import markupsafe

from greenpatch.reports.merge import CellKey, Entry, Matrix, row_name
from greenpatch.reports.model import MODES, ModeSummary, Result, TestVerdict
from greenpatch.reports.summary import (
    CELL_KINDS,
    NOTABLE_VERDICTS,
    CellVerdict,
    cell_verdict,
    cooperation_text,
    error_excerpt,
    format_stack,
    outcome_change,
    result_title,
    visible,
)

__all__ = ["render_html"]

_LEGEND = {
    "pass": "no regression, and the probe shows the library yielding to the loop",
    "unmeasured": "no regression; cooperation not measured (no probe, or the probe failed)",
    "incomplete": "incomplete or not compared (one run only): nothing proven, not a pass",
    "regression": "regressions: pass plain, fail patched, confirmed by a re-run",
    "blocking": "no regression, but the cooperation probe shows the library blocking the loop",
    "not-run": "not run (no server, no source, or no test collected)",
}

# Chart geometry, in SVG user units (the SVG scales to the page width).
# 420 wide so that its 12-unit text is still ~12 px in a 480 px window; the CSS
# caps its width so that the text does not grow huge in a wide one.
_CHART_WIDTH = 420.0
_ROW_HEIGHT = 42.0
_VALUE_ROOM = 90.0  # right of the longest bar (or tick), for "19.4x of 20"


@dataclass
class TestView:
    nodeid: str
    verdict: str
    change: str
    reason: str
    excerpt: str
    stacks: str


@dataclass
class SpotView:
    frame: str
    count: int
    worst: float
    total: float
    tests: list[str]
    stack: str


@dataclass
class ModeView:
    mode: str
    #: How the run is named on the page: the mode, or "patched without zmq".
    label: str
    ran: bool
    counts: str
    duration: float
    processes: int
    exit_codes: str
    command: str
    errors: list[str]


@dataclass
class ResultView:
    anchor: str
    title: str
    source: str
    result: Result
    verdict: CellVerdict
    modes: list[ModeView]
    verdict_counts: list[tuple[str, int]]
    regressions: list[TestView]
    notable: list[TestView]
    hot_spots: list[SpotView]
    #: The probe's outcome, or "cooperation not measured: <why>": always shown.
    cooperation: str
    #: Which tree was tested: "path /x/lib (sha256:...)", or "" when unknown.
    tree: str
    environment: list[tuple[str, str]]


@dataclass
class ChartBar:
    label: str
    anchor: str
    kind: str  # "cooperative" | "blocking" | "error"
    text_y: float
    bar_y: float
    width: float
    ideal_x: float
    value_x: float
    value: str


@dataclass
class Chart:
    bars: list[ChartBar] = field(default_factory=list)
    width: float = _CHART_WIDTH
    height: float = 0.0
    scale_max: float = 0.0


@dataclass
class MatrixRow:
    suite: str
    version: str
    cells: list[tuple[ResultView | None, str]]  # (view, python)


def _anchor(index: int, result: Result) -> str:
    # Ids from untrusted text: keep only [a-z0-9-], and the index makes them unique.
    slug = re.sub(r"[^a-z0-9]+", "-", f"{result.suite} {result.version} {result.python}".lower())
    return f"r{index}-{slug.strip('-')}"


def _test_view(test: TestVerdict) -> TestView:
    return TestView(
        nodeid=test.nodeid,
        verdict=test.verdict,
        change=outcome_change(test),
        reason=test.reason or "",
        excerpt=error_excerpt(test),
        stacks=(test.stacks or "")[:20_000],
    )


def _mode_view(summary: ModeSummary, result: Result) -> ModeView:
    counts = ", ".join(f"{count} {name}" for name, count in summary.counts.items() if count)
    return ModeView(
        mode=summary.mode,
        # Where the mode is named, so is what its patch left out.
        label=result.variant if summary.mode == "patched" and result.variant else summary.mode,
        ran=summary.ran,
        counts=counts or "no test",
        duration=summary.duration,
        processes=summary.processes,
        exit_codes=", ".join(str(code) for code in summary.exit_codes) or "-",
        command=" ".join(summary.command),
        errors=[error[:4000] for error in summary.errors],
    )


def _spot_view(spot: dict[str, Any]) -> SpotView:
    return SpotView(
        frame=str(spot.get("frame", "?")),
        count=int(spot.get("count") or 0),
        worst=float(spot.get("worst") or 0.0),
        total=float(spot.get("total") or 0.0),
        tests=[str(test) for test in spot.get("tests") or []],
        stack=format_stack(spot.get("stack")),
    )


def _mode_order(result: Result) -> list[str]:
    """plain, patched, then any other mode a newer harness may add."""
    known = [mode for mode in MODES if mode in result.modes]
    return known + sorted(mode for mode in result.modes if mode not in MODES)


def _result_view(index: int, entry: Entry) -> ResultView:
    result = entry.result
    return ResultView(
        anchor=_anchor(index, result),
        title=result_title(result),
        source=entry.source,
        result=result,
        verdict=cell_verdict(result),
        modes=[_mode_view(result.modes[mode], result) for mode in _mode_order(result)],
        verdict_counts=sorted(result.verdicts.items(), key=lambda item: -item[1]),
        regressions=[_test_view(test) for test in result.regressions()],
        notable=[_test_view(t) for t in result.tests if t.verdict in NOTABLE_VERDICTS],
        hot_spots=[_spot_view(spot) for spot in result.hot_spots],
        cooperation=cooperation_text(result),
        tree=_tree(result),
        environment=sorted(result.environment.items(), key=lambda item: item[0].lower()),
    )


def _tree(result: Result) -> str:
    source = result.source or {}
    if not source:
        return ""
    text = f"{source.get('kind', '?')} {source.get('location', '?')}"
    return text + (f" ({source['digest']})" if source.get("digest") else "")


def _chart(views: list[ResultView]) -> Chart:
    """A horizontal bar per probe: the factor, with a tick at N (perfect overlap)."""
    probed = [view for view in views if view.result.probe]
    if not probed:
        return Chart()
    scale_max = 1.0
    for view in probed:
        probe = view.result.probe or {}
        scale_max = max(scale_max, float(probe.get("factor") or 0.0))
        scale_max = max(scale_max, float(probe.get("concurrency") or 0.0))
    room = _CHART_WIDTH - _VALUE_ROOM
    chart = Chart(scale_max=scale_max)
    for row, view in enumerate(probed):
        probe = view.result.probe or {}
        top = row * _ROW_HEIGHT
        factor = float(probe.get("factor") or 0.0)
        concurrency = float(probe.get("concurrency") or 0.0)
        label = f"{row_name(view.result)} {view.result.version} · Python {view.result.python}"
        if probe.get("error"):
            kind, value, width = "error", f"probe error: {str(probe['error'])[:60]}", 0.0
        else:
            kind = "cooperative" if probe.get("cooperative") else "blocking"
            value = f"{factor:.1f}x of {probe.get('concurrency', '?')}"
            width = room * factor / scale_max
            label += f" · {kind}"  # in words too: colour alone does not tell everyone
        chart.bars.append(
            ChartBar(
                label=label,
                anchor=view.anchor,
                kind=kind,
                text_y=top + 13,
                bar_y=top + 19,
                width=round(width, 1),
                ideal_x=round(room * concurrency / scale_max, 1),
                # Right of both the bar and the tick, so that neither hides the number.
                value_x=round(max(width, room * concurrency / scale_max) + 8, 1),
                value=value,
            )
        )
    chart.height = len(probed) * _ROW_HEIGHT + 4
    return chart


def _matrix_rows(matrix: Matrix, views: list[ResultView]) -> list[MatrixRow]:
    by_cell = {entry.key: view for entry, view in zip(matrix.entries, views)}
    rows = []
    for suite, version in matrix.rows:
        cells = [
            (by_cell.get(CellKey(suite, version, python)), python) for python in matrix.pythons
        ]
        rows.append(MatrixRow(suite, version, cells))
    return rows


def _visible(value: Any) -> Any:
    """Jinja's ``finalize``: every printed string goes through ``visible`` first.

    Markup (the output of ``join`` and other filters, already escaped) stays
    Markup: ``visible`` only writes control characters as ``\\xNN``, which
    cannot open a tag.
    """
    if isinstance(value, markupsafe.Markup):
        return markupsafe.Markup(visible(str(value)))
    if isinstance(value, str):
        return visible(value)
    return value


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("greenpatch.reports", "templates"),
        autoescape=True,  # every value: test ids and errors are untrusted
        finalize=_visible,
        undefined=jinja2.StrictUndefined,  # a typo in the template fails, not blanks
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(matrix: Matrix) -> str:
    """The whole report as one HTML document."""
    ordered = [_result_view(index, entry) for index, entry in enumerate(matrix.entries)]
    kinds = {view.verdict.kind for view in ordered}
    template = _environment().get_template("report.html.j2")
    return template.render(
        matrix=matrix,
        rows=_matrix_rows(matrix, ordered),
        pythons=matrix.pythons,
        views=ordered,
        chart=_chart(ordered),
        legend=[(kind, _LEGEND[kind]) for kind in CELL_KINDS if kind in kinds],
        any_incomplete_mark=any(
            view.verdict.incomplete and view.verdict.kind != "incomplete" for view in ordered
        ),
        regression_count=sum(len(view.regressions) for view in ordered),
        greenpatch_versions=sorted({view.result.greenpatch_version for view in ordered}),
    )
