"""The Markdown summary: one pull-request comment (GitHub-flavoured Markdown).

Order: a one-line verdict, the matrix (suite, version) x Python with a verdict
per cell, then regressions, stall hot spots, runs that did not finish, merge
notes and unreadable files.  A section longer than ``COLLAPSE_AFTER`` rows is
folded into ``<details>``; lists are capped so that the comment stays well under
GitHub's limit of 65,536 characters (the HTML report has everything).

Untrusted text (test ids, error lines, call sites, reasons) is always put in
code spans: inside one, Markdown and HTML are inert, and so are the things a
comment would otherwise turn into pings or links (``@someone``, ``#123``).
Only ``|`` needs escaping there, because GFM splits table cells first.

The output is deterministic -- no clock, no absolute paths of ours -- so that a
golden file can pin it (tests/reports/golden/).
"""

from __future__ import annotations

import html
import re

from greenpatch.reports.merge import Entry, Matrix
from greenpatch.reports.model import TestVerdict
from greenpatch.reports.summary import (
    CELL_KINDS,
    cell_verdict,
    cooperation_of,
    cooperation_text,
    error_line,
    outcome_change,
    result_title,
    visible,
)

__all__ = ["COLLAPSE_AFTER", "GITHUB_COMMENT_LIMIT", "ICONS", "render_markdown"]

GITHUB_COMMENT_LIMIT = 65_536
#: Sections with more rows than this are folded into <details>.
COLLAPSE_AFTER = 5
#: Rows listed per section before "... and N more"; lowered until the comment fits.
_ROW_CAPS = (50, 20, 5)

INCOMPLETE_ICON = "⚠️"
# ☑️, not ✅, for "no regression but cooperation not measured": a reader takes
# ✅ to mean "works and cooperates", and a suite without a probe only shows the first.
ICONS = {
    "pass": "✅",
    "unmeasured": "☑️",
    "regression": "❌",
    "blocking": "🐢",
    "incomplete": INCOMPLETE_ICON,
    "not-run": "⏹️",
}
_LEGEND = {
    "pass": "no regression, and the probe shows the library yielding to the loop",
    "unmeasured": "no regression; cooperation not measured (no probe, or the probe failed)",
    "regression": "regressions (pass plain, fail patched, confirmed by a re-run)",
    "blocking": "no regression, but the probe shows the library blocking the loop",
    "incomplete": "incomplete or not compared: nothing is proven, not a pass",
    "not-run": "not run",
}


def md_code(text: str, limit: int = 200, in_table: bool = True) -> str:
    """``text`` as one inline code span: inert whatever it contains."""
    text = " ".join(visible(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if not text:
        return ""
    if in_table:
        text = text.replace("|", "\\|")
    # A fence longer than any run of backticks inside; pad when the text touches it.
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    if text.startswith("`") or text.endswith("`"):
        text = f" {text} "
    return f"{fence}{text}{fence}"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~#!])")


def md_text(text: str) -> str:
    """Plain text (a suite name, a version) with Markdown and HTML made inert."""
    text = html.escape(" ".join(visible(text).split()), quote=False)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _cell_name(entry: Entry) -> str:
    # The row's name: "redis (patched without zmq)" for a run that left flags out.
    return f"{md_text(entry.key.suite)} {md_text(entry.result.version)} py{entry.key.python}"


def _headline(matrix: Matrix) -> str:
    entries = matrix.entries
    if not entries:
        return "No results to show."
    verdicts = [cell_verdict(entry.result) for entry in entries]
    regressions = sum(len(entry.result.regressions()) for entry in entries)
    with_regressions = sum(1 for verdict in verdicts if verdict.kind == "regression")
    if regressions:
        line = (
            f"**{_plural(regressions, 'regression')}** in {with_regressions} of "
            f"{_plural(len(entries), 'result')}"
        )
    else:
        # Only results that compared both runs to the end can be "no regression":
        # an incomplete or one-mode result found nothing, it proved nothing.
        compared = sum(1 for v in verdicts if v.kind in ("pass", "unmeasured", "blocking"))
        if compared:
            line = f"**No regression** in {compared} of {_plural(len(entries), 'result')}"
        else:
            line = f"**Nothing compared** in {_plural(len(entries), 'result')}"
    extra = []
    for kind, words in (
        ("blocking", "blocking"),
        ("unmeasured", "cooperation not measured"),
        ("not-run", "not run"),
    ):
        count = sum(1 for verdict in verdicts if verdict.kind == kind)
        if count:
            extra.append(f"{count} {words}")
    incomplete = sum(1 for verdict in verdicts if verdict.incomplete)
    if incomplete:
        extra.append(f"{incomplete} incomplete")
    if matrix.problems:
        extra.append(f"{_plural(len(matrix.problems), 'unreadable file')}")
    return line + (f" · {' · '.join(extra)}" if extra else "") + "."


def _cell(entry: Entry | None) -> str:
    if entry is None:
        return "—"
    verdict = cell_verdict(entry.result)
    text = f"{ICONS[verdict.kind]} {verdict.label}"
    if verdict.incomplete and verdict.kind != "incomplete":
        text += f" {INCOMPLETE_ICON} incomplete"
    return text


def _matrix_table(matrix: Matrix) -> list[str]:
    if not matrix.entries:
        return []
    pythons = matrix.pythons
    lines = [
        "| suite | version | " + " | ".join(f"Python {python}" for python in pythons) + " |",
        "|:--|:--|" + ":--|" * len(pythons),
    ]
    for suite, version in matrix.rows:
        cells = [_cell(matrix.cell(suite, version, python)) for python in pythons]
        lines.append(f"| {md_text(suite)} | {md_text(version)} | " + " | ".join(cells) + " |")
    used = {cell_verdict(entry.result).kind for entry in matrix.entries}
    legend = [f"{ICONS[kind]} {_LEGEND[kind]}" for kind in CELL_KINDS if kind in used]
    if any(
        verdict.incomplete and verdict.kind != "incomplete"
        for verdict in (cell_verdict(entry.result) for entry in matrix.entries)
    ):
        legend.append(f"{INCOMPLETE_ICON} incomplete: the run was cut short, counts are partial")
    return [*lines, "", "<sub>" + " · ".join(legend) + "</sub>"]


def _section(title: str, rows: list[str], total: int, cap: int, header: list[str]) -> list[str]:
    """A titled table, folded when long, with a line for what the cap left out."""
    if total == 0:
        return []
    shown = rows[:cap]
    body = [*header, *shown]
    if total > len(shown):
        body += ["", f"… and {total - len(shown)} more: see the HTML report or the JSON results."]
    lines = [f"### {title} ({total})", ""]
    if total > COLLAPSE_AFTER:
        lines += [f"<details><summary>Show {total}</summary>", "", *body, "", "</details>"]
    else:
        lines += body
    return lines


def _regression_row(entry: Entry, test: TestVerdict) -> str:
    change = outcome_change(test).replace(" plain, ", " plain → ")
    return (
        f"| {_cell_name(entry)} | {md_code(test.nodeid)} | {md_text(change)} "
        f"| {md_code(error_line(test, limit=120))} |"
    )


def _regressions(matrix: Matrix, cap: int) -> list[str]:
    rows = [
        _regression_row(entry, test)
        for entry in matrix.entries
        for test in entry.result.regressions()
    ]
    header = ["| result | test | outcomes | error |", "|:--|:--|:--|:--|"]
    return _section(f"{ICONS['regression']} Regressions", rows, len(rows), cap, header)


def _hot_spots(matrix: Matrix, cap: int) -> list[str]:
    spots = [(entry, spot) for entry in matrix.entries for spot in entry.result.hot_spots]
    spots.sort(key=lambda item: -float(item[1].get("worst") or 0.0))
    rows = []
    for entry, spot in spots:
        tests = [str(test) for test in spot.get("tests") or []]
        shown = ", ".join(tests[:2]) + (f" +{len(tests) - 2}" if len(tests) > 2 else "")
        rows.append(
            f"| {_cell_name(entry)} | {md_code(short_frame(str(spot.get('frame', '?'))))} "
            f"| {int(spot.get('count') or 0)} | {float(spot.get('worst') or 0.0):.2f} s "
            f"| {md_code(shown, limit=160)} |"
        )
    header = ["| result | blocking call | stalls | worst | tests |", "|:--|:--|--:|--:|:--|"]
    return _section("🔥 Loop-stall hot spots", rows, len(rows), cap, header)


def short_frame(frame: str) -> str:
    """A call site without the install prefix: ``redis/connection.py:123 in read``."""
    for marker in ("site-packages/", "dist-packages/"):
        if marker in frame:
            return frame.rsplit(marker, 1)[1]
    path, sep, rest = frame.partition(":")
    parts = path.split("/")
    return ("/".join(parts[-3:]) if len(parts) > 3 else path) + sep + rest


def _unfinished(matrix: Matrix, cap: int) -> list[str]:
    rows = []
    for entry in matrix.entries:
        result = entry.result
        verdict = cell_verdict(result)
        if verdict.kind == "not-run":
            why = md_code(verdict.detail, in_table=False)
            rows.append(f"- {ICONS['not-run']} {md_text(result_title(result))}: {why}")
        elif verdict.incomplete:
            why = (
                verdict.detail
                if verdict.kind == "incomplete"
                else "the run was cut short; the counts are partial"
            )
            rows.append(f"- {INCOMPLETE_ICON} {md_text(result_title(result))}: {md_text(why)}")
        else:
            continue
        if result.reproduce:
            rows[-1] += f" — re-run: {md_code(result.reproduce, in_table=False)}"
    return _section("Not run or incomplete", rows, len(rows), cap, [])


def _unmeasured(matrix: Matrix, cap: int) -> list[str]:
    """Every result whose cooperation was not measured, with why: the matrix
    cell says it only for results that are otherwise a pass."""
    rows = [
        f"- {md_text(result_title(entry.result))}: {md_code(why, in_table=False)}"
        for entry in matrix.entries
        if cell_verdict(entry.result).kind != "not-run"
        and cooperation_of(entry.result) in ("not_measured", "probe_error")
        for why in [cooperation_text(entry.result)]
    ]
    return _section("Cooperation not measured", rows, len(rows), cap, [])


def _notes(matrix: Matrix, cap: int) -> list[str]:
    rows = [f"- {md_text(note)}" for note in matrix.notes]
    return _section("Merge notes", rows, len(rows), cap, [])


def _problems(matrix: Matrix, cap: int) -> list[str]:
    rows = [f"- {md_code(str(problem), limit=300, in_table=False)}" for problem in matrix.problems]
    return _section("⛔ Unreadable result files", rows, len(rows), cap, [])


def _footer(matrix: Matrix) -> list[str]:
    versions = sorted({entry.result.greenpatch_version for entry in matrix.entries})
    made_by = f"greenpatch {', '.join(md_text(v) for v in versions)}" if versions else "greenpatch"
    count = _plural(len(matrix.entries), "result")
    return [f"<sub>{made_by} · {count} · every detail is in the HTML report</sub>"]


def _render(matrix: Matrix, cap: int) -> str:
    blocks = [
        ["## greenpatch compat", "", _headline(matrix)],
        _matrix_table(matrix),
        _regressions(matrix, cap),
        _hot_spots(matrix, cap),
        _unfinished(matrix, cap),
        _unmeasured(matrix, cap),
        _notes(matrix, cap),
        _problems(matrix, cap),
        _footer(matrix),
    ]
    return "\n\n".join("\n".join(block) for block in blocks if block) + "\n"


def render_markdown(matrix: Matrix) -> str:
    """The summary for a pull-request comment; always below GitHub's size limit."""
    for cap in _ROW_CAPS:
        text = _render(matrix, cap)
        if len(text) < GITHUB_COMMENT_LIMIT:
            return text
    # Only a matrix of thousands of cells gets here: drop the lists, keep the verdicts.
    return _render(matrix, 0)[: GITHUB_COMMENT_LIMIT - 100] + "\n\n(cut to fit a comment)\n"
