"""Fuzzing the suite-manifest loader: whatever the file holds, one ``ManifestError`` or a manifest.

docs/compat.md: "A bad manifest is one error naming the file, the key and what
was expected".  Properties:

* arbitrary bytes, text near TOML, and valid TOML of random shapes load or
  raise ``ManifestError`` -- never another exception -- and the message starts
  with the file's path;
* in a built-in manifest, one value replaced by a value of the wrong type (or
  an out-of-range number: nan, inf, 0, huge) gives a ``ManifestError`` whose key
  is exactly the dotted key of that value (``deselect[2].reason``).

Examples per property are small by default; set ``GREENPATCH_FUZZ_EXAMPLES``
for a longer run (``GREENPATCH_FUZZ_EXAMPLES=20000 .venv/bin/pytest
tests/compat_tests/test_fuzz_manifest.py``).
"""

from __future__ import annotations

import datetime
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenpatch.compat_tests.manifest import Manifest, ManifestError, builtin_suites, load_manifest
from tests._fuzz import fuzz

from .conftest import TINYLIB

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# One file for all the examples: a temporary directory per example would cost
# more than the parse.
_DIR = Path(tempfile.mkdtemp(prefix="greenpatch-fuzz-manifest-"))
PATH = _DIR / "suite.toml"


def load_bytes(data: bytes) -> Manifest | ManifestError:
    PATH.write_bytes(data)
    try:
        return load_manifest(PATH)
    except ManifestError as exc:
        assert str(exc).startswith(str(PATH.resolve())), str(exc)
        assert exc.path == str(PATH.resolve())
        return exc


# -- a small TOML writer (for documents of any shape; no third-party writer needed) ------


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (int, datetime.date, datetime.time)):
        return value.isoformat() if not isinstance(value, int) else str(value)
    if isinstance(value, str):
        escaped = "".join(
            c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}"
            if ord(c) < 0x10000 else f"\\U{ord(c):08x}"
            for c in value
        )  # fmt: skip
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def toml_key(key: str) -> str:
    return toml_value(key)  # always quoted: any string is a valid key then


def toml_document(data: dict[str, Any]) -> str:
    """Scalars and inline values at the top, then [tables] and [[arrays of tables]]."""
    lines = []
    for key, value in data.items():
        if not isinstance(value, dict) and not _is_table_array(value):
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{toml_key(key)}]")
            lines.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        elif _is_table_array(value):
            for item in value:
                lines.append(f"[[{toml_key(key)}]]")
                lines.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in item.items())
    return "\n".join(lines) + "\n"


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


# -- strategies ------------------------------------------------------------------------

KNOWN_KEYS = [
    "suite", "source", "environment", "pytest", "services", "deselect", "expected", "probe",
    "name", "distribution", "version", "description", "kind", "path", "url", "tests",
    "requirements", "requirements_no_deps", "install_library", "env", "args",
    "per_test_timeout", "run_timeout", "redis", "option", "id", "marker", "reason",
    "callable", "concurrency", "delay",
]  # fmt: skip
keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=8)
scalars = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["sdist", "path", "vcs", "venv", "current", "a:b", "", " ", "redis"]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.booleans(),
    st.dates(),
    st.times(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=12,
)
documents = st.dictionaries(keys, values, max_size=6)

TOML_ALPHABET = st.sampled_from(
    [*"[]{}=.,'\"#\n\t 0123456789abcdefxyz-_:+", "[[", "]]", '"""', "'''", "\\u", "nan"]
)


@fuzz(200)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_manifest_or_one_manifest_error(data):
    load_bytes(data)


@fuzz(300)
@given(st.lists(TOML_ALPHABET | keys, max_size=40))
def test_text_near_toml_gives_a_manifest_or_one_manifest_error(parts):
    load_bytes("".join(parts).encode())


@fuzz(150)
@given(documents)
def test_valid_toml_of_any_shape_gives_a_manifest_or_one_manifest_error(document):
    text = toml_document(document)
    assert tomllib.loads(text) == document or _has_nan(document)  # the writer is faithful
    outcome = load_bytes(text.encode())
    if isinstance(outcome, ManifestError) and outcome.key:
        # The key named is one of the document's (or a required one it lacks).
        named = outcome.key
        assert named.startswith("suite.") or any(
            named == key or named.startswith((key + ".", key + "[")) for key in document
        ), outcome


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    return False


def test_nesting_too_deep_for_the_toml_parser_is_a_manifest_error():
    outcome = load_bytes(b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n")
    assert isinstance(outcome, ManifestError) and "nested too deeply" in str(outcome)


def test_non_utf8_manifest_is_a_manifest_error_naming_the_byte():
    outcome = load_bytes(b"[suite]\ndistribution = '\xff'\n")
    assert isinstance(outcome, ManifestError) and "not UTF-8" in str(outcome)


# -- one wrong value in a real manifest ----------------------------------------------------

BUILTINS = {name: tomllib.loads(path.read_text()) for name, path in builtin_suites().items()}
BUILTINS["tinylib"] = tomllib.loads((TINYLIB / "suite.toml").read_text())


def leaves(data: Any, where: str = "") -> list[tuple[str, list[Any], Any]]:
    """(dotted key as the loader names it, path to it, value) for every value worth mutating."""
    out = []
    for key, value in data.items():
        name = f"{where}.{key}" if where else key
        if isinstance(value, dict):
            out.append((name, [key], value))  # a table replaced by a scalar
            if name == "environment.env":
                continue  # a table of strings, checked (and named) as a whole
            out.extend((n, [key, *p], v) for n, p, v in leaves(value, name))
        elif _is_table_array(value):
            for index, item in enumerate(value):
                out.append((f"{name}[{index}]", [key, index], item))
                out.extend((n, [key, index, *p], v) for n, p, v in leaves(item, f"{name}[{index}]"))
        else:
            out.append((name, [key], value))
    return out


def wrong_values(value: Any) -> st.SearchStrategy[Any]:
    """Values of another type than ``value`` (or out of its range), as TOML can hold them."""
    others: list[Any] = [[1, 2], {"x": 1}, True, datetime.date(2026, 1, 1)]
    if isinstance(value, bool):
        return st.sampled_from([*others[:2], "yes", 1])
    if isinstance(value, str):
        return st.sampled_from([*others, 7, 2.5, "", "   "])
    if isinstance(value, (int, float)):
        return st.sampled_from([*others, "20", 0, -1, math.nan, math.inf, 10**400])
    if isinstance(value, list):
        return st.sampled_from([*others[1:], "a", 3, ["ok", 5], [["nested"]]])
    if isinstance(value, dict):
        return st.sampled_from([5, "table", [1], True])
    raise TypeError(value)


@st.composite
def one_wrong_value(draw: Any) -> tuple[str, str, Any]:
    name = draw(st.sampled_from(sorted(BUILTINS)))
    document = BUILTINS[name]
    key, path, value = draw(st.sampled_from(leaves(document)))
    wrong = draw(wrong_values(value))
    mutated = _replace(document, path, wrong)
    return key, toml_document(mutated), wrong


def _replace(data: Any, path: list[Any], value: Any) -> Any:
    head, *rest = path
    if isinstance(data, dict):
        copy = dict(data)
    else:
        copy = list(data)
    copy[head] = value if not rest else _replace(data[head], rest, value)
    return copy


@fuzz(300)
@given(one_wrong_value())
def test_one_wrong_value_in_a_builtin_manifest_names_its_key(case):
    key, text, wrong = case
    outcome = load_bytes(text.encode())
    assert isinstance(outcome, ManifestError), (key, wrong)
    # Values inside a list of strings are named by the list.
    assert outcome.key == key or key.startswith(outcome.key + "["), (outcome.key, key, wrong)
    assert outcome.problem.startswith(("expected", "unknown", "say how", "a deselect")), outcome


@pytest.mark.parametrize(
    ("table", "line", "key"),
    [
        ("pytest", "per_test_timeout = nan", "pytest.per_test_timeout"),
        ("pytest", "run_timeout = inf", "pytest.run_timeout"),
        ("pytest", "run_timeout = 1" + "0" * 400, "pytest.run_timeout"),
        ("probe", "callable = 'a:b'\nconcurrency = inf", "probe.concurrency"),
        ("probe", "callable = 'a:b'\nconcurrency = nan", "probe.concurrency"),
        ("probe", "callable = 'a:b'\nconcurrency = 0.5", "probe.concurrency"),
        ("probe", "callable = 'a:b'\nconcurrency = 1" + "0" * 30, "probe.concurrency"),
        ("probe", "callable = 'a:b'\ndelay = nan", "probe.delay"),
        ("source", "kind = 'path'\npath = \"a\\u0000b\"", "source.path"),
    ],
    ids=[
        "nan-timeout",
        "inf-timeout",
        "huge-int",
        "inf-concurrency",
        "nan-concurrency",
        "fractional-concurrency",
        "absurd-concurrency",
        "nan-delay",
        "nul-in-path",
    ],
)
def test_numbers_toml_allows_but_no_run_can_use_are_refused_by_key(table, line, key):
    text = f"[suite]\ndistribution = 'x'\nversion = '1'\n[{table}]\n{line}\n"
    outcome = load_bytes(text.encode())
    assert isinstance(outcome, ManifestError) and outcome.key == key, outcome
