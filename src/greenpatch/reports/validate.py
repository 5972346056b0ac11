"""Reading a result file strictly: JSON, then version, then the shipped JSON Schema.

``model.read_result`` checks what the dataclasses need (keys, top-level types,
verdict names).  The renderers need more -- the shape of hot spots and probes,
outcome names, counts that are integers -- and a file copied out of a CI job
may be anything.  ``load_result`` therefore checks a document against
``schema.json`` (shipped in the package, so other tools can validate results
too) before building the ``Result``, and turns every problem into one
``ResultError`` that names the file and the place in it.

The order of the checks is chosen for the message: a wrong ``schema_version``
is reported as such (with what to do), not as the first of many schema
violations that a different version naturally has.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from greenpatch.reports.model import SCHEMA_VERSION, Result, ResultError, decode_document

__all__ = ["SCHEMA_RESOURCE", "load_result", "load_schema", "validate_document"]

#: The schema's file name inside the ``greenpatch.reports`` package.
SCHEMA_RESOURCE = "schema.json"

# A schema message quotes the offending value; a whole mis-typed list of tests
# would make a screenful of one error line.
_MAX_MESSAGE = 300


@functools.lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    """The result schema shipped with this greenpatch (parsed once)."""
    text = resources.files("greenpatch.reports").joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.lru_cache(maxsize=1)
def _validator() -> Validator:
    schema = load_schema()
    cls = validator_for(schema)
    return cls(schema)


def _where(path: Iterable[Any]) -> str:
    """``["tests", 3, "flaky"]`` -> ``tests[3].flaky``, as model.py names places."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "document"


def validate_document(data: Any, path: str | os.PathLike[str] = "<result>") -> None:
    """Raise ``ResultError`` unless ``data`` (parsed JSON) is a valid result of this version."""
    if not isinstance(data, dict):
        raise ResultError(path, f"expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        writer = data.get("greenpatch_version")
        by = f" (written by greenpatch {writer})" if isinstance(writer, str) else ""
        raise ResultError(
            path,
            f"schema_version {version!r}{by} is not the supported {SCHEMA_VERSION}; "
            "render it with the greenpatch that wrote it, or re-run the suite with this one",
        )
    error = best_match(_validator().iter_errors(data))
    if error is not None:
        message = error.message
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 3] + "..."
        raise ResultError(path, f"'{_where(error.absolute_path)}': {message}")


def load_result(path: str | os.PathLike[str]) -> Result:
    """Read, check and build the result at ``path``; ``ResultError`` says what is wrong."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ResultError(path, f"cannot read: {exc.strerror or exc}") from exc
    data = decode_document(raw, path)
    validate_document(data, path)
    return Result.from_dict(data, path)
