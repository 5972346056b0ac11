"""Compatibility results: the JSON document (``model``) and, later, its renderings.

Imports nothing of greenpatch: a report can be read and rendered anywhere.
"""

from greenpatch.reports.model import (
    MODES,
    OUTCOMES,
    SCHEMA_VERSION,
    VERDICTS,
    ModeSummary,
    Result,
    ResultError,
    TestVerdict,
    read_result,
    write_result,
)

__all__ = [
    "MODES",
    "OUTCOMES",
    "SCHEMA_VERSION",
    "VERDICTS",
    "ModeSummary",
    "Result",
    "ResultError",
    "TestVerdict",
    "read_result",
    "write_result",
]
