"""What every rendering says about a result, decided once.

Markdown, HTML and JUnit XML must agree on the verdict of a matrix cell, on
which line of a traceback is "the error", and on how a stack reads; if each
renderer decided for itself they would drift apart.  Nothing here formats for
one medium: escaping is each renderer's job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from greenpatch.reports.model import COOPERATION, MODES, Result, TestVerdict, judge_cooperation

__all__ = [
    "CELL_KINDS",
    "NOTABLE_VERDICTS",
    "CellVerdict",
    "cell_verdict",
    "cooperation_of",
    "cooperation_text",
    "error_excerpt",
    "error_line",
    "format_stack",
    "outcome_change",
    "probe_text",
    "result_title",
    "visible",
]

#: A matrix cell is one of these (legends list them in this order).
#:
#: - "pass": no regression, both runs complete, and the probe says cooperative;
#: - "unmeasured": no regression, but no probe ran (or it failed): it works,
#:   whether it yields to the loop is not known -- never shown as a plain pass;
#: - "incomplete": no regression *found*, but the comparison is partial (a run
#:   cut short, or only one mode run): never shown as a pass;
#: - "regression", "blocking", "not-run".
#:
#: A cut-short run that already shows regressions (or blocking) keeps that kind,
#: with the incomplete mark on top: what it found stands.
CELL_KINDS = ("pass", "unmeasured", "regression", "blocking", "incomplete", "not-run")

#: Verdicts worth listing beside regressions (the others are passed/skipped).
NOTABLE_VERDICTS = ("hung", "crashed", "flaky", "expected", "fixed", "needs_network")

_HANG_OUTCOMES = ("hung", "crashed")


# Control characters (C0 but tab and newlines, DEL, C1), lone surrogates and
# U+FFFE/U+FFFF: XML 1.0 forbids most of them, HTML calls them parse errors,
# and a lone surrogate cannot even be encoded to write the file.
_INVISIBLE = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _escape_invisible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every character that no output may carry written as ``\\xNN``.

    Error output is full of them (ANSI colours, a NUL from a crash); writing
    them out keeps every rendering well-formed without silently losing them.
    """
    return _INVISIBLE.sub(_escape_invisible, text)


@dataclass(frozen=True)
class CellVerdict:
    kind: str  # one of CELL_KINDS
    label: str  # short text for the cell: "578 passed", "2 regressions", ...
    incomplete: bool
    #: One sentence for a tooltip or a legend: what the kind means for this result.
    detail: str


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def cell_verdict(result: Result) -> CellVerdict:
    """The verdict of one cell: not run, regressions, blocking (probe), incomplete,
    cooperation not measured, or pass."""
    incomplete = result.incomplete
    # "Not run" already says that nothing is complete: no second mark on it.
    if result.not_run_reason:
        return CellVerdict("not-run", "not run", False, result.not_run_reason)
    if not result.tests:
        # "Never as passed" (docs/architecture.md): a run that saw no test proves nothing.
        why = "interrupted before any test finished" if incomplete else "the result lists no test"
        return CellVerdict("not-run", "no tests", False, why)
    regressions = len(result.regressions())
    if regressions:
        return CellVerdict(
            "regression",
            _plural(regressions, "regression"),
            incomplete,
            "passes plain, fails patched (confirmed by a re-run)",
        )
    cooperation = cooperation_of(result)
    if cooperation == "blocking":
        return CellVerdict(
            "blocking",
            "blocking",
            incomplete,
            f"no regression, but the library did not yield to the loop: "
            f"{probe_text(result.probe or {})}",
        )
    passed = sum(1 for test in result.tests if test.verdict == "passed")
    missing = [mode for mode in MODES if mode not in result.modes or not result.modes[mode].ran]
    if missing or incomplete:
        # Nothing here may read as a pass: "0 passed ⚠️ incomplete" used to be a
        # green cell.  The count says how far it got, the kind says it is partial.
        if missing:
            ran = [mode for mode in MODES if mode not in missing]
            label = f"not compared ({' and '.join(ran) or 'no'} run only)"
            detail = f"the {' and '.join(missing)} run did not happen: nothing was compared"
        else:
            label = f"incomplete ({passed} passed so far)"
            detail = "the run was cut short: the counts are partial, nothing is proven"
        return CellVerdict("incomplete", label, True, detail)
    if cooperation != "cooperative":
        return CellVerdict(
            "unmeasured",
            f"{passed} passed, cooperation not measured",
            False,
            f"no regression; {cooperation_text(result)}",
        )
    return CellVerdict("pass", f"{passed} passed", False, "no regression, and the probe cooperates")


def cooperation_of(result: Result) -> str:
    """``result.cooperation``, or (a Result built by hand) what its probe says."""
    return (
        result.cooperation if result.cooperation in COOPERATION else judge_cooperation(result.probe)
    )


def cooperation_text(result: Result) -> str:
    """One sentence on cooperation for every rendering: the probe's outcome, or
    ``cooperation not measured: <why>``."""
    cooperation = cooperation_of(result)
    if cooperation == "not_measured":
        why = result.cooperation_reason or "no cooperation probe ran"
        return f"cooperation not measured: {why}"
    if cooperation == "probe_error":
        return f"cooperation not measured: {probe_text(result.probe or {})}"
    return probe_text(result.probe or {})


def result_title(result: Result) -> str:
    """``requests 2.32.3 on Python 3.11.7``; a run that left ``patch_all`` flags
    out says so: ``pyzmq 27.3.0 on Python 3.11.7, patched without zmq``."""
    title = f"{result.suite} {result.version} on Python {result.python}"
    return f"{title}, {result.variant}" if result.variant else title


def outcome_change(test: TestVerdict) -> str:
    """``passed plain, failed patched (re-run: passed, failed)``."""
    text = f"{test.plain or 'not run'} plain, {test.patched or 'not run'} patched"
    if test.rerun:
        text += f" (re-run: {test.rerun.get('plain', '?')}, {test.rerun.get('patched', '?')})"
    return text


def _failing_outcome(test: TestVerdict) -> str | None:
    return test.patched if test.verdict == "regression" else (test.plain or test.patched)


def error_line(test: TestVerdict, limit: int = 160) -> str:
    """The one line of a test's error that says the most.

    A failure's traceback ends with the exception, so its last line; a hang or
    a crash is described by the watchdog first ("hung: no result within 60 s"),
    so its first line.
    """
    lines = [line.strip() for line in (test.error or "").splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[0] if _failing_outcome(test) in _HANG_OUTCOMES else lines[-1]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def error_excerpt(test: TestVerdict, max_lines: int = 40, max_chars: int = 4000) -> str:
    """The part of the error worth showing: its end (or, for a hang, its start)."""
    text = (test.error or "").rstrip()
    if not text:
        return ""
    lines = text.splitlines()
    from_start = _failing_outcome(test) in _HANG_OUTCOMES
    if len(lines) > max_lines:
        cut = len(lines) - max_lines
        if from_start:
            lines = [*lines[:max_lines], f"... ({cut} more lines in the JSON result)"]
        else:
            lines = [f"... ({cut} earlier lines in the JSON result)", *lines[-max_lines:]]
    text = "\n".join(lines)
    if len(text) > max_chars:
        note = " characters: the rest is in the JSON result)"
        if from_start:
            text = text[:max_chars] + f"\n... (cut at {max_chars}{note}"
        else:
            text = f"... (the last {max_chars}{note}\n" + text[-max_chars:]
    return text


def format_stack(stack: Any, max_frames: int = 64) -> str:
    """A stall's stack as a Python traceback reads (outermost first).

    Accepts what the stall monitor records -- a list of {file, line, function,
    code} -- and, for robustness, a list of strings or one string.
    """
    if isinstance(stack, str):
        return stack
    if not isinstance(stack, list):
        return ""
    lines: list[str] = []
    frames = stack[-max_frames:]
    if len(stack) > len(frames):
        lines.append(f"  ... {len(stack) - len(frames)} outer frames not shown")
    for frame in frames:
        if isinstance(frame, Mapping):
            where = f'  File "{frame.get("file", "?")}", line {frame.get("line", "?")}'
            lines.append(f"{where}, in {frame.get('function', '?')}")
            if frame.get("code"):
                lines.append(f"    {frame['code']}")
        else:
            lines.append(f"  {frame}")
    return "\n".join(lines)


def probe_text(probe: Mapping[str, Any]) -> str:
    """``factor 19.4 of 20 concurrent calls: cooperative``, or the probe's error."""
    if probe.get("error"):
        return f"probe error: {probe['error']}"
    factor = float(probe.get("factor") or 0.0)
    concurrency = probe.get("concurrency", "?")
    verdict = "cooperative" if probe.get("cooperative") else "blocking"
    return f"factor {factor:.1f} of {concurrency} concurrent calls: {verdict}"
