"""The compatibility result: one versioned JSON document per (suite, version, Python).

Everything else in ``reports`` (Markdown, HTML, JUnit XML) is a rendering of this
document, so it is the stable contract: ``SCHEMA_VERSION`` goes up whenever a
field changes meaning or disappears (adding an optional field does not bump it),
and ``read_result`` refuses a document of another version instead of guessing.

A partial run (Ctrl-C, a harness crash, a service that never came up) still
produces a valid document: ``incomplete`` says so and ``not_run_reason`` says why.

This module imports nothing of greenpatch (docs/architecture.md: reports -> nothing of ours).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = [
    "COOPERATION",
    "MODES",
    "OUTCOMES",
    "SCHEMA_VERSION",
    "VERDICTS",
    "ModeSummary",
    "Result",
    "ResultError",
    "TestVerdict",
    "judge_cooperation",
    "read_result",
    "write_result",
]

SCHEMA_VERSION = 1

#: The two runs of a suite.
MODES = ("plain", "patched")

#: What one test did in one run.  "error" is a failure outside the test body
#: (fixture setup/teardown); "hung" and "crashed" are set by the outside watchdog.
#: An outcome is null when the run did not reach the test (see the verdict's reason).
OUTCOMES = ("passed", "failed", "error", "skipped", "hung", "crashed", "deselected")

#: The verdict of one test, from its two outcomes.
VERDICTS = (
    "passed",  # passed both
    "regression",  # passes plain, fails (or hangs, crashes) patched, confirmed by a re-run
    "failed_both",  # fails both: not ours to judge
    "fixed",  # fails plain, passes patched
    "skipped",  # skipped (or deselected by the manifest) in a run
    "hung",  # hung plain (patched hangs that pass plain are regressions)
    "crashed",  # crashed plain
    "expected",  # a known incompatibility listed in the manifest with a reason
    "needs_network",  # refused by the network guard (not loopback)
    "flaky",  # looked like a regression once, not on the re-run
)

#: What a result says about cooperation (``Result.cooperation``).  "not_measured"
#: is a verdict of its own, written out, because a missing probe used to be a
#: silent ``probe: null`` that every rendering showed as a plain pass: a reader
#: takes a green cell to mean "works *and* yields to the loop".
COOPERATION = ("cooperative", "blocking", "probe_error", "not_measured")


def judge_cooperation(probe: dict[str, Any] | None) -> str:
    """The ``COOPERATION`` value a probe's outcome stands for (None: no probe ran)."""
    if not probe:
        return "not_measured"
    if probe.get("error"):
        return "probe_error"
    return "cooperative" if probe.get("cooperative") else "blocking"


class ResultError(ValueError):
    """A result document that cannot be read: names the file and what is wrong."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class TestVerdict:
    """One test's outcomes in both runs and what they mean."""

    __test__ = False  # not a pytest test class, despite the name

    nodeid: str
    verdict: str
    plain: str | None = None
    patched: str | None = None
    #: Why: the manifest's reason for a deselect/expected entry, or a skip reason.
    reason: str | None = None
    #: The failure excerpt of the failing run (regressions, hangs, crashes).
    error: str | None = None
    #: Stacks of every thread and greenlet, for a test that hung.
    stacks: str | None = None
    #: The outcomes of the re-run of a suspected regression: {"plain": .., "patched": ..}.
    rerun: dict[str, str] | None = None
    flaky: bool = False
    duration_plain: float | None = None
    duration_patched: float | None = None


@dataclass
class ModeSummary:
    """One run (plain or patched) of a suite."""

    mode: str
    ran: bool = False
    #: Outcome -> number of tests (see OUTCOMES).
    counts: dict[str, int] = field(default_factory=dict)
    duration: float = 0.0
    #: The pytest processes started: >1 when the watchdog resumed after a hang/crash.
    processes: int = 0
    exit_codes: list[int] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    #: Collection errors and other output that belongs to no test.
    errors: list[str] = field(default_factory=list)
    #: Seconds spent waiting out tests that hung (timeouts, stack dumps): a cost
    #: of the failure, not the speed of the code; ``active_duration`` leaves it out.
    watchdog_seconds: float = 0.0

    @property
    def active_duration(self) -> float:
        return max(self.duration - self.watchdog_seconds, 0.0)


@dataclass
class Result:
    """The whole document."""

    suite: str
    library: str
    version: str
    python: str
    platform: str
    greenpatch_version: str
    schema_version: int = SCHEMA_VERSION
    started_at: str = ""
    finished_at: str = ""
    incomplete: bool = False
    #: Set when the suite did not run at all (no server to be had, source missing, ...).
    not_run_reason: str | None = None
    modes: dict[str, ModeSummary] = field(default_factory=dict)
    #: Verdict -> number of tests.
    verdicts: dict[str, int] = field(default_factory=dict)
    tests: list[TestVerdict] = field(default_factory=list)
    #: Loop-stall hot spots of the patched run (each: frame, count, worst, tests, stack).
    hot_spots: list[dict[str, Any]] = field(default_factory=list)
    #: The cooperation probe (concurrency, delay, factor, wall, cooperative, error, ...).
    probe: dict[str, Any] | None = None
    #: One of COOPERATION: what the probe says, or "not_measured" when no probe
    #: ran.  The terminal summary and every rendering read this, never ``probe``
    #: alone.  Documents written before it existed get it from ``probe`` (from_dict).
    cooperation: str = ""
    #: Why cooperation was not measured ("the manifest has no [probe]", "--only plain").
    cooperation_reason: str | None = None
    #: The tree the tests (and, for a path library, the library) came from:
    #: {"kind": sdist|path|vcs, "location": path or URL, "digest": content hash
    #: of a local tree ("sha256:..."), ...}.  A path library is hashed so that a
    #: result always says which state of the tree it judged.
    source: dict[str, str] | None = None
    #: Where the greenpatch under test was imported from in the suite's
    #: environment (its package directory), as that environment reports it.
    greenpatch_path: str = ""
    #: Distribution name -> installed version, in the environment the suite ran in.
    environment: dict[str, str] = field(default_factory=dict)
    #: The shell command that reproduces this result.
    reproduce: str = ""
    notes: list[str] = field(default_factory=list)
    #: The ``patch_all`` flags the patched run and the probe left out
    #: (``greenpatch compat run --without zmq``), sorted; empty: everything
    #: ``patch_all()`` applies by default.  Documents written before the field
    #: existed read as empty, which is what their runs did.
    without: list[str] = field(default_factory=list)

    @property
    def variant(self) -> str:
        """``"patched without zmq"``, or "" for the default patch."""
        return f"patched without {', '.join(self.without)}" if self.without else ""

    def regressions(self) -> list[TestVerdict]:
        return [test for test in self.tests if test.verdict == "regression"]

    def count_verdicts(self) -> None:
        """Recompute ``verdicts`` from ``tests`` (and, when nobody set it,
        ``cooperation`` from ``probe``: this is the last step before writing)."""
        if not self.cooperation:
            self.cooperation = judge_cooperation(self.probe)
        counts: dict[str, int] = {}
        for test in self.tests:
            counts[test.verdict] = counts.get(test.verdict, 0) + 1
        self.verdicts = {name: counts[name] for name in VERDICTS if name in counts}

    def compared(self) -> bool:
        """Whether both runs happened and ran to their end: only then can a
        test's "passed" mean "passes under the patch too"."""
        return not self.incomplete and all(
            mode in self.modes and self.modes[mode].ran for mode in MODES
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # Never written empty: a Result made by hand (or by an older caller)
        # still says whether cooperation was measured.
        data["cooperation"] = self.cooperation or judge_cooperation(self.probe)
        return data

    @classmethod
    def from_dict(cls, data: Any, path: str | os.PathLike[str] = "<result>") -> Result:
        """Build a Result from parsed JSON; ``ResultError`` names what is wrong."""
        if not isinstance(data, dict):
            raise ResultError(path, f"expected a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ResultError(
                path,
                f"schema_version {version!r} is not the supported {SCHEMA_VERSION}; "
                "re-run the suite with this greenpatch to regenerate it",
            )
        values = _check_fields(cls, data, path, "")
        modes = data.get("modes", {})
        if not isinstance(modes, dict):
            raise ResultError(path, "'modes' must be an object")
        values["modes"] = {
            name: ModeSummary(**_check_fields(ModeSummary, mode, path, f"modes.{name}."))
            for name, mode in modes.items()
        }
        tests = data.get("tests", [])
        if not isinstance(tests, list):
            raise ResultError(path, "'tests' must be a list")
        values["tests"] = [
            TestVerdict(**_check_fields(TestVerdict, test, path, f"tests[{index}]."))
            for index, test in enumerate(tests)
        ]
        for index, test in enumerate(values["tests"]):
            if test.verdict not in VERDICTS:
                raise ResultError(
                    path, f"tests[{index}].verdict {test.verdict!r} is not one of {VERDICTS}"
                )
        if not all(isinstance(flag, str) for flag in values.get("without", [])):
            raise ResultError(path, "'without' must be a list of strings")
        result = cls(**values)
        if result.cooperation not in COOPERATION:
            # Absent (a document from before the field) or unknown (a newer
            # writer): decided from the probe, as that writer would have.
            result.cooperation = judge_cooperation(result.probe)
        return result


# What each field's JSON value must be; the nested ones are checked by from_dict.
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "str | None": (str, type(None)),
    "int": (int,),
    "float": (int, float),
    "float | None": (int, float, type(None)),
    "bool": (bool,),
    "list[int]": (list,),
    "list[str]": (list,),
    "dict[str, int]": (dict,),
    "dict[str, str]": (dict,),
    "dict[str, str] | None": (dict, type(None)),
    "dict[str, Any] | None": (dict, type(None)),
    "list[dict[str, Any]]": (list,),
}
_NESTED = {"modes", "tests"}


def _check_fields(cls: type, data: Any, path: str | os.PathLike[str], where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ResultError(path, f"{where.rstrip('.') or 'document'} must be an object")
    values: dict[str, Any] = {}
    for spec in fields(cls):
        if spec.name in _NESTED:
            continue
        if spec.name not in data:
            if spec.default is MISSING and spec.default_factory is MISSING:  # required
                raise ResultError(path, f"missing key '{where}{spec.name}'")
            continue
        value = data[spec.name]
        expected = _JSON_TYPES.get(str(spec.type))
        if expected is not None and (
            not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected)
        ):
            raise ResultError(
                path,
                f"'{where}{spec.name}' must be {spec.type}, got {type(value).__name__}",
            )
        values[spec.name] = value
    return values


def write_result(path: str | os.PathLike[str], result: Result) -> Path:
    """Write ``result`` as JSON at ``path`` atomically (temp file + rename).

    A reader never sees half a document: an interrupted write leaves the old
    file (or none), not a truncated one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result.to_dict(), indent=2, sort_keys=False) + "\n"
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent)
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, target)
    except BaseException:
        try:
            os.unlink(temp_name)
        except FileNotFoundError:
            pass
        raise
    return target


def read_result(path: str | os.PathLike[str]) -> Result:
    """Read a result written by ``write_result``.

    Raises ``ResultError`` naming the file for a missing, corrupt, truncated or
    wrong-version document.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ResultError(path, f"cannot read: {exc.strerror or exc}") from exc
    return Result.from_dict(decode_document(raw, path), path)


def decode_document(raw: bytes, path: str | os.PathLike[str]) -> Any:
    """The JSON value in ``raw``; ``ResultError`` naming ``path`` for anything else."""
    if not raw.strip():
        raise ResultError(path, "empty file (the run was killed before writing its result?)")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ResultError(path, f"not UTF-8 text (byte {exc.start}): not a result file") from exc
    except json.JSONDecodeError as exc:
        raise ResultError(
            path,
            f"not valid JSON (corrupt or truncated?) at line {exc.lineno} "
            f"column {exc.colno}: {exc.msg}",
        ) from exc
    except RecursionError:
        # The decoder recurses per nesting level; a result is a few levels deep.
        raise ResultError(path, "not valid JSON for a result: nested too deeply") from None
    except ValueError as exc:
        # Python refuses integers of more than 4300 digits (int_max_str_digits).
        raise ResultError(path, f"not valid JSON for a result: {exc}") from exc
