"""Reading a result strictly: the shipped schema agrees with the model, and every
bad file is one ResultError naming the file and the place in it."""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest

from greenpatch.reports.model import (
    MODES,
    OUTCOMES,
    SCHEMA_VERSION,
    VERDICTS,
    ModeSummary,
    Result,
    ResultError,
    TestVerdict,
    write_result,
)
from greenpatch.reports.validate import load_result, load_schema, validate_document
from tests.reports import samples


def _required(cls: type) -> set[str]:
    return {
        spec.name
        for spec in fields(cls)
        if spec.default is MISSING and spec.default_factory is MISSING
    }


@pytest.mark.parametrize(
    ("cls", "pointer"),
    [(Result, None), (ModeSummary, "mode_summary"), (TestVerdict, "test_verdict")],
)
def test_schema_describes_every_field_of_the_model(cls: type, pointer: str | None) -> None:
    schema = load_schema()
    part = schema if pointer is None else schema["$defs"][pointer]
    assert set(part["properties"]) == {spec.name for spec in fields(cls)}
    extra = {"schema_version"} if cls is Result else set()
    assert set(part["required"]) == _required(cls) | extra


def test_schema_enumerations_match_the_model() -> None:
    defs = load_schema()["$defs"]
    assert tuple(defs["verdict"]["enum"]) == VERDICTS
    assert tuple(defs["outcome"]["enum"]) == OUTCOMES
    assert tuple(defs["mode_name"]["enum"]) == MODES
    assert load_schema()["properties"]["schema_version"] == {"const": SCHEMA_VERSION}


def test_schema_is_itself_a_valid_json_schema() -> None:
    from jsonschema.validators import validator_for

    schema = load_schema()
    validator_for(schema).check_schema(schema)


@pytest.mark.parametrize(
    "make",
    [
        samples.passing_result,
        samples.regressing_result,
        samples.blocking_result,
        samples.not_run_result,
        samples.partial_result,
        samples.empty_result,
        samples.hostile_result,
    ],
)
def test_every_written_result_reads_back_valid(tmp_path: Path, make: Any) -> None:
    result = make()
    path = write_result(tmp_path / "r.json", result)
    assert load_result(path) == result


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


def _document() -> dict[str, Any]:
    return samples.regressing_result().to_dict()


def test_truncated_file_names_the_file_and_the_position(tmp_path: Path) -> None:
    path = write_result(tmp_path / "cut.json", samples.regressing_result())
    path.write_text(path.read_text()[:250])
    with pytest.raises(ResultError, match=r"cut\.json: not valid JSON \(corrupt or truncated\?\)"):
        load_result(path)


def test_empty_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text("")
    with pytest.raises(ResultError, match=r"empty\.json: empty file"):
        load_result(path)


def test_binary_garbage_is_not_a_result(tmp_path: Path) -> None:
    path = tmp_path / "garbage.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ResultError, match=r"garbage\.json: not UTF-8"):
        load_result(path)


def test_newer_schema_version_names_the_writer_and_what_to_do(tmp_path: Path) -> None:
    data = _document()
    data["schema_version"] = SCHEMA_VERSION + 1
    data["greenpatch_version"] = "9.0.0"
    with pytest.raises(ResultError) as caught:
        load_result(_write(tmp_path, data))
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "bad.json"))
    assert f"schema_version {SCHEMA_VERSION + 1} (written by greenpatch 9.0.0)" in message
    assert "re-run the suite" in message


def test_missing_schema_version_is_a_version_error(tmp_path: Path) -> None:
    data = _document()
    del data["schema_version"]
    with pytest.raises(ResultError, match="schema_version None"):
        load_result(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("mutate", "place"),
    [
        (lambda d: d["hot_spots"][0].update(count="seven"), "'hot_spots[0].count'"),
        (lambda d: d["probe"].update(factor="fast"), "'probe"),
        (lambda d: d["tests"][1].update(patched="exploded"), "'tests[1].patched'"),
        (lambda d: d["modes"]["plain"]["counts"].update(passed=-1), "'modes.plain.counts.passed'"),
        (lambda d: d["verdicts"].update(great=1), "'verdicts'"),
        (lambda d: d.update(environment={"redis": 5}), "'environment.redis'"),
        (lambda d: d.update(incomplete="no"), "'incomplete'"),
    ],
)
def test_wrong_shape_deep_in_the_document_names_the_place(
    tmp_path: Path, mutate: Any, place: str
) -> None:
    data = _document()
    mutate(data)
    with pytest.raises(ResultError) as caught:
        load_result(_write(tmp_path, data))
    assert str(caught.value).startswith(f"{tmp_path / 'bad.json'}: {place}")


def test_unknown_keys_are_accepted_for_forward_compatibility(tmp_path: Path) -> None:
    # Adding an optional field does not bump schema_version (model.py): older
    # readers must accept newer documents that only add keys.
    data = _document()
    data["new_top_level_field"] = {"anything": [1, 2]}
    data["tests"][0]["new_test_field"] = 3
    assert load_result(_write(tmp_path, data)).suite == "redis"


def test_a_huge_wrong_value_gives_a_short_message() -> None:
    data = _document()
    data["tests"] = "x" * 100_000
    with pytest.raises(ResultError) as caught:
        validate_document(data, "big.json")
    assert len(str(caught.value)) < 400


def test_non_object_document_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ResultError, match="expected a JSON object, got list"):
        load_result(_write(tmp_path, [1, 2]))


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ResultError, match=r"nope\.json: cannot read"):
        load_result(tmp_path / "nope.json")
