"""``greenpatch report``: merge result files and render them.

    greenpatch report RESULT.json|DIR... [--html FILE] [--md FILE] [--junit FILE]

A directory stands for the ``*.json`` files in it (tox does not expand globs).
With no output option the Markdown summary goes to stdout; ``-`` as a FILE is
stdout too.  Several results merge into one matrix; a cell given twice keeps
the newer result, and a note on stderr (and in the outputs) says so.

Exit status: 0 when every file was read and every output written; 1 when some
result file could not be read (the others are still rendered, and the outputs
list the unreadable ones); 2 when an output cannot be written or the
``compat`` extra is missing.

Only argparse and pathlib are imported at module level: the top-level
``greenpatch`` parser imports this module to build its sub-command, and
``greenpatch run`` must stay light until it has patched.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from greenpatch.reports.merge import Matrix

__all__ = ["DESCRIPTION", "add_arguments", "main", "run"]

_PROG = "greenpatch report"
#: For the sub-parser's description (the top-level cli uses it too).
DESCRIPTION = (
    "Merge compat results into one matrix and render it: a Markdown summary for a pull "
    "request, one self-contained HTML file, and JUnit XML for any CI."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``report``'s arguments to ``parser`` (the ``report`` sub-parser)."""
    parser.add_argument(
        "results",
        nargs="+",
        metavar="RESULT",
        help="result files written by `greenpatch compat run`, or directories of them",
    )
    parser.add_argument("--html", metavar="FILE", help="one self-contained HTML report")
    parser.add_argument("--md", metavar="FILE", help="the Markdown summary (a PR comment)")
    parser.add_argument("--junit", metavar="FILE", help="JUnit XML, one testcase per test")


def _write(target: str, text: str) -> None:
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _summary(matrix: Matrix, written: list[str]) -> str:
    regressions = sum(len(entry.result.regressions()) for entry in matrix.entries)
    text = f"{len(matrix.entries)} result(s), {regressions} regression(s)"
    files = [target for target in written if target != "-"]
    return text + (f" -> {', '.join(files)}" if files else "")


def run(args: argparse.Namespace) -> int:
    """Run ``greenpatch report`` with the parsed ``args``; returns the exit status."""
    try:
        from greenpatch.reports.html import render_html
        from greenpatch.reports.junit import render_junit
        from greenpatch.reports.markdown import render_markdown
        from greenpatch.reports.merge import load_matrix
    except ImportError as exc:
        print(
            f"{_PROG}: needs the compat extra ({exc.name} is missing): "
            "pip install 'greenpatch[compat]'",
            file=sys.stderr,
        )
        return 2

    matrix = load_matrix(args.results)
    for problem in matrix.problems:
        print(f"{_PROG}: {problem}", file=sys.stderr)
    for note in matrix.notes:
        print(f"{_PROG}: note: {note}", file=sys.stderr)

    renderers: list[tuple[str | None, Callable[[Matrix], str]]] = [
        (args.html, render_html),
        (args.md, render_markdown),
        (args.junit, render_junit),
    ]
    if not any(target for target, _ in renderers):
        renderers = [("-", render_markdown)]
    # Render everything before writing anything: a renderer that fails leaves
    # the previous outputs as they were, not half of them replaced.
    outputs = [(target, render(matrix)) for target, render in renderers if target]
    written: list[str] = []
    for target, text in outputs:
        try:
            _write(target, text)
        except OSError as exc:
            print(f"{_PROG}: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        written.append(target)
    print(f"{_PROG}: {_summary(matrix, written)}", file=sys.stderr)
    return 1 if matrix.problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``greenpatch report ...`` on its own (the top-level cli calls ``run``)."""
    parser = argparse.ArgumentParser(prog=_PROG, description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(list(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
