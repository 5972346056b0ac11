"""Fuzzing the result-file readers: whatever a file holds, a ``Result`` or one ``ResultError``.

docs/reports.md: ``load_result`` "raises one ``ResultError`` whose message starts
with the file name", and names the place in the document for a schema problem
(``'hot_spots[0].count': ...``).  Properties:

* arbitrary bytes (not UTF-8, not JSON, truncated, nested without end) and
  valid JSON of any shape give a ``Result`` or one ``ResultError`` naming the
  file, from ``validate.load_result`` and from ``model.read_result``;
* in a valid document, one value replaced by a value of the wrong type is a
  ``ResultError`` that names that value's place (or the object holding it);
* a document ``load_result`` accepts -- however odd its strings and numbers --
  renders to Markdown, HTML and JUnit XML without an exception.

Examples per property are small by default; set ``GREENPATCH_FUZZ_EXAMPLES``
for a longer run (``GREENPATCH_FUZZ_EXAMPLES=20000 .venv/bin/pytest
tests/reports/test_fuzz_reader.py``).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from greenpatch.reports.html import render_html
from greenpatch.reports.junit import render_junit
from greenpatch.reports.markdown import render_markdown
from greenpatch.reports.merge import Entry, Matrix
from greenpatch.reports.model import Result, ResultError, read_result
from greenpatch.reports.validate import load_result
from tests._fuzz import fuzz
from tests.reports import samples

_DIR = Path(tempfile.mkdtemp(prefix="greenpatch-fuzz-reader-"))
PATH = _DIR / "result.json"


def read(reader: Any, data: bytes) -> Result | ResultError:
    PATH.write_bytes(data)
    try:
        return reader(PATH)  # type: ignore[no-any-return]
    except ResultError as exc:
        assert str(exc).startswith(f"{PATH}: "), str(exc)
        assert exc.path == str(PATH)
        return exc


def render_all(result: Result) -> None:
    matrix = Matrix(entries=[Entry(result, str(PATH))])
    render_markdown(matrix)
    render_html(matrix)
    render_junit(matrix)


# -- strategies --------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


json_values = st.recursive(json_scalars, _containers, max_leaves=15)
FIELD_NAMES = [
    "suite", "library", "version", "python", "platform", "greenpatch_version", "schema_version",
    "modes", "tests", "verdicts", "hot_spots", "probe", "environment", "notes", "incomplete",
]  # fmt: skip
VALID = [result.to_dict() for result in samples.matrix_results()]


@st.composite
def document_shaped(draw: Any) -> dict[str, Any]:
    """Objects with the document's keys (and schema_version 1 often) but random values."""
    document = draw(st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=10))
    if draw(st.booleans()):
        document["schema_version"] = 1
    return document


# -- any bytes, any JSON ----------------------------------------------------------------------


@fuzz(300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_result_or_one_result_error(data):
    read(load_result, data)


@fuzz(150)
@given(st.one_of(json_values, document_shaped()))
def test_json_of_any_shape_gives_a_result_or_one_result_error_from_both_readers(value):
    data = json.dumps(value).encode()
    for reader in (load_result, read_result):
        read(reader, data)


@fuzz(200)
@given(st.sampled_from(VALID), st.integers(0, 10**6), st.binary(max_size=8))
def test_truncated_or_spliced_documents_give_one_result_error(document, cut, junk):
    text = json.dumps(document, indent=2).encode()
    cut %= len(text)
    data = text[:cut] + junk
    for reader in (load_result, read_result):
        outcome = read(reader, data)
        if cut < len(text) - 2:  # the closing brace is gone: never a Result
            assert isinstance(outcome, ResultError)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"schema_version": ' + b"7" * 5000 + b"}", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"", "empty file"),
    ],
    ids=["deep", "huge-int", "not-utf8", "empty"],
)
@pytest.mark.parametrize("reader", [load_result, read_result], ids=["load_result", "read_result"])
def test_both_readers_refuse_what_json_loads_chokes_on_with_a_result_error(data, problem, reader):
    outcome = read(reader, data)
    assert isinstance(outcome, ResultError) and problem in str(outcome)


# -- one wrong value in a valid document --------------------------------------------------------


def leaves(value: Any, where: str = "") -> list[tuple[str, list[Any], Any]]:
    """(place as the reader names it, path, value) for every value of a document."""
    out = []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        name = f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else key)
        out.append((name, [key], item))
        if isinstance(item, (dict, list)):
            out.extend((n, [key, *p], v) for n, p, v in leaves(item, name))
    return out


def _replace(data: Any, path: list[Any], value: Any) -> Any:
    head, *rest = path
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[head] = value if not rest else _replace(data[head], rest, value)
    return copy


def _wrong(value: Any) -> list[Any]:
    """JSON values of another type than ``value``."""
    if value is None:
        return [[1], True]  # nullable fields are strings, numbers or objects: these never fit
    if isinstance(value, bool):
        return ["true", 1, None, [True]]  # no boolean field is nullable
    if isinstance(value, (int, float)):
        return ["7", True, [1], {"n": 1}]  # not null: several numbers are nullable
    if isinstance(value, str):
        return [7, True, [value], {"s": value}]
    if isinstance(value, list):
        return ["list", 3, True, {"0": 1}]
    return ["object", 3, [value]]


@st.composite
def one_wrong_value(draw: Any) -> tuple[str, bytes, Any]:
    document = draw(st.sampled_from(VALID))
    place, path, value = draw(st.sampled_from(leaves(document)))
    wrong = draw(st.sampled_from(_wrong(value)))
    # A stack, and each of its frames, may also be plain text (schema.json: oneOf).
    assume(not (re.search(r"\.stack(\[\d+\])?$", place) and isinstance(wrong, str)))
    return place, json.dumps(_replace(document, path, wrong)).encode(), wrong


@fuzz(150)
@given(one_wrong_value())
def test_one_wrong_type_in_a_valid_document_is_a_result_error_naming_its_place(case):
    place, data, wrong = case
    outcome = read(load_result, data)
    assert isinstance(outcome, ResultError), (place, wrong)
    if place == "schema_version":
        assert "schema_version" in outcome.problem
        return
    named = outcome.problem.split("'")[1]
    # The value itself, the object or list that holds it (an anyOf names its
    # owner), or a place inside it (an object where null was: its first bad key).
    assert _same_branch(named, place), (named, place)
    read(read_result, data)  # the lighter reader: a Result or a ResultError, never a crash


def _same_branch(one: str, other: str) -> bool:
    """Whether one place is the other or holds it (``tests[1]`` holds ``tests[1].flaky``)."""
    if one == "document" or one == other:
        return True
    short, long = sorted((one, other), key=len)
    return long.startswith((short + ".", short + "["))


ODD_STRINGS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["\x00", "\x1b[31m", "\ud800", "]]>", "<script>", "\u2028", "", "a" * 5000]),
)
ODD_NUMBERS = st.sampled_from([0, -1, 10**30, 1e308, -0.0, 2**53 + 1, 0.1])


@st.composite
def odd_but_typed(draw: Any) -> tuple[str, bytes]:
    """A valid document with one value replaced by an odd one of the same JSON type."""
    document = draw(st.sampled_from(VALID))
    place, path, value = draw(st.sampled_from(leaves(document)))
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        odd: Any = draw(st.sampled_from([[], {}, None, "x"])) if value is None else value
    elif isinstance(value, (int, float)):
        odd = draw(ODD_NUMBERS)
    else:
        odd = draw(ODD_STRINGS)
    return place, json.dumps(_replace(document, path, odd)).encode()


@fuzz(40)  # three renderings per example: the slow one
@given(odd_but_typed())
def test_any_document_load_result_accepts_renders_everywhere(case):
    _, data = case
    outcome = read(load_result, data)
    if isinstance(outcome, Result):
        render_all(outcome)


def test_nan_and_infinity_are_not_taken_for_numbers_silently():
    # json.loads accepts NaN and Infinity (not JSON); whatever the reader does
    # with them, it must not crash, nor a renderer afterwards.
    document = json.loads(json.dumps(VALID[0]))
    document["modes"]["plain"]["duration"] = math.inf
    document["probe"] = {"factor": math.nan, "concurrency": 20, "delay": 0.3}
    outcome = read(load_result, json.dumps(document).encode())
    if isinstance(outcome, Result):
        render_all(outcome)
