"""One suite, end to end: source -> environment -> services -> plain run ->
patched run -> re-runs of suspects -> stall hot spots -> probe -> result file.

Whatever happens, a result is written: a suite whose service or source could
not be had is "not run" with the reason; Ctrl-C writes what was seen so far,
marked incomplete, after the services are stopped (``running_services`` is a
context manager), and then lets the KeyboardInterrupt go on.  A service that
dies under the suite stops it there: the result says which service and how,
and is marked incomplete (a mode that did not get to run judges nothing: its
tests are "did not run", never "passed").
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import greenpatch
from greenpatch.compat_tests import verdict as verdicts
from greenpatch.compat_tests.environment import Environment, EnvironmentError_
from greenpatch.compat_tests.environment import prepare_environment as _prepare_environment
from greenpatch.compat_tests.manifest import Manifest, builtin_suites
from greenpatch.compat_tests.runner import EventCallback, ModeRun, RunSpec, run_mode
from greenpatch.compat_tests.services import (
    RunningServices,
    ServiceUnavailable,
    running_services,
    service_arguments,
)
from greenpatch.compat_tests.sources import SourceError, obtain_release, prepare_source
from greenpatch.reports.model import ModeSummary, Result, write_result

__all__ = [
    "HarnessOptions",
    "PreconditionError",
    "RelabeledListener",
    "SuiteListener",
    "check_preconditions",
    "default_cache_dir",
    "result_path",
    "run_suite",
]

STALL_FILE_ENV = "GREENPATCH_STALL_FILE"
STALL_THRESHOLD_ENV = "GREENPATCH_STALL_THRESHOLD"


class PreconditionError(ValueError):
    """A usage problem found before any work (an unwritable cache, ...): the
    command line prints ``greenpatch compat: <message>`` (one line) and exits 2."""


def _default_cache_dir_without_env() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "greenpatch"


def check_cache_dir(cache_dir: Path) -> None:
    """The cache must be a writable directory (created if missing); the message
    names where the setting came from (``--cache-dir`` or ``GREENPATCH_CACHE_DIR``)."""
    from_env = os.environ.get("GREENPATCH_CACHE_DIR")
    if from_env and Path(from_env).expanduser().resolve() == cache_dir.resolve():
        name = f"GREENPATCH_CACHE_DIR={from_env}"
    elif cache_dir == _default_cache_dir_without_env():
        name = f"the cache directory {cache_dir}"
    else:
        name = f"--cache-dir {cache_dir}"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise PreconditionError(f"{name}: not writable ({exc.strerror or exc})") from exc


def check_preconditions(manifests: list[Manifest], options: HarnessOptions) -> None:
    """Everything about these runs that can be found wrong before any work.

    Manifests are checked when loaded (``ManifestError``: a missing
    ``source.path``, a missing probe file); this adds what depends on the
    options.  Raises ``PreconditionError`` (exit 2, one line).
    """
    check_cache_dir(options.cache_dir)
    for manifest in manifests:
        if manifest.source_kind == "path" and (
            manifest.source_path is None or not manifest.source_path.is_dir()
        ):
            raise PreconditionError(
                f"{manifest.path} [source.path]: {manifest.source_path} does not exist"
            )


def default_cache_dir() -> Path:
    """``$GREENPATCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/greenpatch``, else
    ``~/.cache/greenpatch``."""
    if os.environ.get("GREENPATCH_CACHE_DIR"):
        return Path(os.environ["GREENPATCH_CACHE_DIR"]).expanduser()
    return _default_cache_dir_without_env()


@dataclass
class HarnessOptions:
    out_dir: Path
    cache_dir: Path = field(default_factory=default_cache_dir)
    version: str | None = None
    python: str | None = None
    only: str | None = None  # "plain" | "patched" | None for both
    services: dict[str, str] = field(default_factory=dict)
    allow_network: bool = False
    stall_threshold: float = 0.1
    rerun_suspects: bool = True
    #: ``patch_all`` flags the patched run and the probe leave out (``--without``):
    #: the figure "patched without the plugin".  Kept sorted and unique.
    without: list[str] = field(default_factory=list)
    #: The command-line options that shaped the run, for the result's "reproduce".
    reproduce_args: list[str] = field(default_factory=list)


class SuiteListener:
    """What the CLI hears while a suite runs (the default hears nothing)."""

    def phase(self, suite: str, text: str) -> None:
        pass

    def collected(self, suite: str, mode: str, count: int) -> None:
        pass

    def outcome(self, suite: str, mode: str, nodeid: str, outcome: str) -> None:
        pass


class RelabeledListener(SuiteListener):
    """A listener hearing one suite under another name: two versions of a suite
    in one command are two lines of the display (``redis 5.*``, ``redis latest``)."""

    def __init__(self, listener: SuiteListener, label: str) -> None:
        self._listener = listener
        self._label = label

    def phase(self, suite: str, text: str) -> None:
        self._listener.phase(self._label, text)

    def collected(self, suite: str, mode: str, count: int) -> None:
        self._listener.collected(self._label, mode, count)

    def outcome(self, suite: str, mode: str, nodeid: str, outcome: str) -> None:
        self._listener.outcome(self._label, mode, nodeid, outcome)


def result_path(out_dir: Path, result: Result) -> Path:
    """``redis-5.2.1-py3.11.json``; a run that left flags out is another file
    (``...-py3.11-without-zmq.json``), so both figures can share one ``--out``."""
    short = ".".join(result.python.split(".")[:2])
    without = _without_suffix(result.without)
    return out_dir / f"{result.suite}-{result.version}-py{short}{without}.json"


def _without_suffix(without: list[str]) -> str:
    return "".join(f"-without-{flag}" for flag in without)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def run_suite(
    manifest: Manifest,
    options: HarnessOptions,
    listener: SuiteListener | None = None,
) -> tuple[Result, Path]:
    """Run ``manifest``'s suite and write its result; returns it and where it went."""
    listener = listener or SuiteListener()
    # One spelling per set of flags: the result's file name and row depend on it.
    options = dataclasses.replace(options, without=sorted(set(options.without)))
    local = manifest.source_kind == "path"
    result = Result(
        suite=manifest.name,
        library=manifest.distribution,
        # A local tree is the version it is, whatever --version asked for.
        version=manifest.version if local else options.version or manifest.version,
        python=platform.python_version(),
        platform=platform.platform(),
        greenpatch_version=greenpatch.__version__,
        greenpatch_path=str(Path(greenpatch.__file__).resolve().parent),
        started_at=_now(),
        reproduce=_reproduce(manifest, options),
        without=list(options.without),
    )
    try:
        _run(manifest, options, listener, result)
    except (SourceError, EnvironmentError_, ServiceUnavailable) as exc:
        result.not_run_reason = str(exc)
        result.incomplete = True
    except KeyboardInterrupt:
        result.incomplete = True
        result.notes.append("interrupted (Ctrl-C): partial result")
        _finish(result, options)
        raise
    return result, _finish(result, options)


def _reproduce(manifest: Manifest, options: HarnessOptions) -> str:
    """The command, with the environment variables that shaped this run in front:
    without them a re-run would use another cache (another environment)."""
    variables = {
        name: value
        for name, value in sorted(os.environ.items())
        if name.startswith("GREENPATCH_") and name not in (STALL_FILE_ENV, STALL_THRESHOLD_ENV)
    }
    if options.cache_dir != default_cache_dir():
        variables["GREENPATCH_CACHE_DIR"] = str(options.cache_dir)
    command = ["greenpatch", "compat", "run", _suite_ref(manifest), *options.reproduce_args]
    prefix = "".join(f"{name}={shlex.quote(value)} " for name, value in variables.items())
    return prefix + shlex.join(command)


def _finish(result: Result, options: HarnessOptions) -> Path:
    result.finished_at = _now()
    result.count_verdicts()
    return write_result(result_path(options.out_dir, result), result)


def _run(
    manifest: Manifest, options: HarnessOptions, listener: SuiteListener, result: Result
) -> None:
    name = manifest.name
    if options.without:
        left_out = ", ".join(f"{flag}=False" for flag in options.without)
        result.notes.append(f"the patched run and the probe called patch_all({left_out})")
    listener.phase(name, "fetching tests")
    if manifest.source_kind == "sdist":
        item = options.version or manifest.version
        python = _python_version(options.python)
        source, notes = obtain_release(manifest, item, python, options.cache_dir)
        result.notes.extend(notes)
        # Requirements, deselections, services: as the manifest reads for this release.
        manifest = manifest.for_version(source.version)
        result.notes.extend(f"manifest for {source.version}: {line}" for line in manifest.applied)
    else:
        source = prepare_source(manifest, options.version, options.cache_dir)
    result.version = source.version
    result.source = source.describe()
    result.notes.append(f"tests from {source.origin}")
    listener.phase(name, "preparing environment")
    env = _prepare_environment(manifest, source, options.python, options.cache_dir)
    result.python = env.python_version
    result.environment = env.packages
    result.notes.append(f"environment: {env.location} ({env.python})")
    if env.greenpatch_path:
        # What the suite's environment imports, not what launched the run: the
        # two differ for --python PATH, and the result must name the one tested.
        result.greenpatch_path = env.greenpatch_path
    if source.kind == "path":
        installed = env.version_of(manifest.distribution)
        if installed:
            result.version = installed  # the installed metadata, never a --version spec
    # Logs and event files of the last run of this suite: evidence beside the result.
    suffix = _without_suffix(options.without)
    work_dir = options.out_dir / f".{name}-{source.version}-py{_short(env)}{suffix}.work"
    shutil.rmtree(work_dir, ignore_errors=True)
    listener.phase(name, "starting services")
    with running_services(
        manifest.services, options.services, work_dir / "services", env.python, source.root
    ) as urls:
        for service, url in urls.items():
            how = "given" if service in options.services else "started by the harness"
            result.notes.append(f"service {service}: {url} ({how})")
        spec = _run_spec(manifest, options, source.root, env, urls, work_dir, result)
        runs = _both_runs(manifest, options, listener, spec, result)
        plain, patched = runs.get("plain"), runs.get("patched")
        lost = _service_loss(runs, result)
        if options.rerun_suspects and plain is not None and patched is not None and not lost:
            _rerun_suspects(name, listener, spec, result)
        if patched is not None:
            result.hot_spots = _hot_spots(work_dir / "stalls.jsonl", result)
        if manifest.probe is None:
            result.cooperation_reason = (
                "the manifest has no [probe] (see docs/compat.md: a probe needs no Python)"
            )
        elif options.only == "plain":
            result.cooperation_reason = "--only plain: the probe belongs to the patched run"
        elif any(not run.records for run in runs.values()):
            # Measuring a library whose tests did not run (pytest could not even
            # collect them) would be a verdict on an environment nobody checked.
            result.cooperation_reason = "the suite ran no test: the probe was not run"
        else:
            lost = lost or urls.describe_loss()
            if lost:
                result.probe = {"error": f"not run: {lost}"}
            else:
                listener.phase(name, "cooperation probe")
                result.probe = _probe(manifest, env, urls, source.root, options.without)
                _note_known_blocking(manifest, result)
    _check_runs(runs, result)


def _note_known_blocking(manifest: Manifest, result: Result) -> None:
    """A probe the manifest knows to block: say why beside the verdict (and say
    when it no longer blocks: the manifest is then out of date)."""
    probe, why = result.probe or {}, manifest.probe.blocks if manifest.probe else None
    if not why or probe.get("error"):
        return
    if probe.get("cooperative"):
        result.notes.append(
            f"the probe cooperated although the manifest expects it to block ({why}): "
            "the manifest's [probe] blocks is out of date"
        )
    else:
        result.notes.append(f"the probe blocks the loop, as the manifest expects: {why}")


def _service_loss(runs: dict[str, ModeRun], result: Result) -> str | None:
    """Note a service that died under a run; the suite stops there."""
    for mode, run in runs.items():
        if run.service_lost:
            result.incomplete = True
            result.notes.append(
                f"{run.service_lost} during the {mode} run: the suite stopped there; tests "
                "that had not finished are reported as not run, suspects were not re-run"
            )
            return run.service_lost
    return None


def _run_spec(
    manifest: Manifest,
    options: HarnessOptions,
    root: Path,
    env: Environment,
    urls: RunningServices,
    work_dir: Path,
    result: Result,
) -> RunSpec:
    """How both runs are started: the same but for the patch (and the stall monitor)."""
    service_args, service_env = service_arguments(manifest.services, urls)
    ignored = _ignored_paths(manifest, root)
    for path, reason in ignored.items():
        result.notes.append(f"not collected: {path}: {reason}")
    return RunSpec(
        python=env.python,
        cwd=root,
        pytest_args=[
            *manifest.tests,
            *manifest.pytest_args,
            *service_args,
            *(f"--ignore={path}" for path in ignored),
        ],
        work_dir=work_dir,
        env={**manifest.env, **service_env},
        deselect=[_deselect_entry(entry) for entry in manifest.deselect],
        per_test_timeout=manifest.per_test_timeout,
        run_timeout=manifest.run_timeout,
        allow_network=options.allow_network,
        patched_env={
            STALL_FILE_ENV: str(work_dir / "stalls.jsonl"),
            STALL_THRESHOLD_ENV: str(options.stall_threshold),
        },
        without=list(options.without),
        service_check=urls.describe_loss if urls.started else None,
    )


def _check_runs(runs: dict[str, ModeRun], result: Result) -> None:
    """A run that stopped early makes the result incomplete; one that ran no test
    at all (usage error, import error, broken patch) makes the suite "not run"."""
    if any(run.incomplete for run in runs.values()):
        result.incomplete = True
    for mode, run in runs.items():
        if run.incomplete and run.errors and not run.interrupted and not run.service_lost:
            # Say in the notes (which every rendering shows) why the run stopped
            # early: "pytest killed by SIGKILL outside any test", a deadline, ...
            result.notes.append(f"the {mode} run stopped early: {run.errors[-1].splitlines()[0]}")
    for mode, run in runs.items():
        if not run.records:
            first = run.errors[0] if run.errors else "pytest collected no test"
            lines = first.splitlines()
            # What happened (first line) and why (a traceback ends with it).
            excerpt = "\n".join(lines if len(lines) <= 16 else [lines[0], "...", *lines[-15:]])
            result.not_run_reason = f"the {mode} run ran no test: {excerpt}"
            return


def _ignored_paths(manifest: Manifest, root: Path) -> dict[str, str]:
    """Deselected whole files or folders: not even imported (a module that fails
    at import, e.g. for want of TLS certificates, would fail the collection)."""
    return {
        entry.id: entry.reason
        for entry in manifest.deselect
        if entry.id and "::" not in entry.id and entry.marker is None and (root / entry.id).exists()
    }


def _suite_ref(manifest: Manifest) -> str:
    builtin = builtin_suites().get(manifest.name)
    return manifest.name if builtin == manifest.path else str(manifest.path)


def _python_version(python: str | None) -> str | None:
    """``--python`` as "X.Y" for the package index's Requires-Python filter
    (None: the releases this interpreter can install)."""
    if python is None or re.fullmatch(r"\d+\.\d+", python):
        return python
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # the environment step says what is wrong with it
    return done.stdout.strip() or None


def _short(env: Environment) -> str:
    return ".".join(env.python_version.split(".")[:2])


def _deselect_entry(entry: Any) -> dict[str, str]:
    out = {"reason": entry.reason}
    if entry.id:
        out["id"] = entry.id
    if entry.marker:
        out["marker"] = entry.marker
    return out


def _listen(listener: SuiteListener, suite: str, mode: str) -> EventCallback:
    def on_event(kind: str, event: dict[str, Any]) -> None:
        if kind == "collected":
            listener.collected(suite, mode, int(event["count"]))
        elif kind == "result":
            listener.outcome(suite, mode, str(event["nodeid"]), str(event["outcome"]))

    return on_event


def _both_runs(
    manifest: Manifest,
    options: HarnessOptions,
    listener: SuiteListener,
    spec: RunSpec,
    result: Result,
) -> dict[str, ModeRun]:
    runs: dict[str, ModeRun] = {}
    modes = [options.only] if options.only else ["plain", "patched"]
    try:
        for mode in modes:
            listener.phase(manifest.name, f"{mode} run")
            runs[mode] = run_mode(spec, mode, on_event=_listen(listener, manifest.name, mode))
            result.modes[mode] = _summary(runs[mode])
            if runs[mode].interrupted:
                raise KeyboardInterrupt
            if runs[mode].service_lost:
                break  # every test of the next run would fail for want of the service
    finally:
        # Judged with what every run saw -- also on Ctrl-C.  A mode that was to
        # run and did not judges as an empty run: its tests "did not run" there,
        # so a test seen passing plain only is never reported "passed".
        judged = {mode: runs.get(mode) or ModeRun(mode=mode) for mode in modes}
        for mode in modes:
            result.modes.setdefault(mode, ModeSummary(mode=mode, ran=False))
        result.tests = verdicts.judge_all(
            judged.get("plain"), judged.get("patched"), manifest.expected_reason
        )
    return runs


def _summary(run: ModeRun) -> ModeSummary:
    return ModeSummary(
        mode=run.mode,
        ran=True,
        counts=run.counts(),
        duration=round(run.duration, 3),
        processes=run.processes,
        exit_codes=run.exit_codes,
        command=run.command,
        errors=run.errors,
        watchdog_seconds=round(run.watchdog_seconds, 3),
    )


def _rerun_suspects(suite: str, listener: SuiteListener, spec: RunSpec, result: Result) -> None:
    """Re-run each suspected regression once in each mode before it counts."""
    suspects = [test for test in result.tests if test.verdict == "regression"]
    if not suspects:
        return
    ids = [test.nodeid for test in suspects]
    listener.phase(suite, f"re-running {len(ids)} suspected regression(s)")
    plain = run_mode(spec, "plain", only=ids)
    stopped = plain.interrupted or plain.service_lost
    patched = run_mode(spec, "patched", only=ids) if not stopped else None
    if plain.interrupted or (patched is not None and patched.interrupted):
        raise KeyboardInterrupt  # the verdicts stand as first judged
    lost = plain.service_lost or (patched.service_lost if patched else None)
    if patched is None or lost:
        result.incomplete = True
        result.notes.append(f"{lost} during the re-runs: suspects stay unconfirmed")
        return
    for test in suspects:
        verdicts.confirm(test, plain.records.get(test.nodeid), patched.records.get(test.nodeid))
    flaky = sum(test.flaky for test in suspects)
    result.notes.append(
        f"re-ran {len(ids)} suspected regression(s) once in each mode: "
        f"{len(ids) - flaky} confirmed, {flaky} flaky"
    )


def _python_path(first: Path) -> str:
    rest = os.environ.get("PYTHONPATH")
    return os.pathsep.join([str(first), *([rest] if rest else [])])


def _hot_spots(stall_file: Path, result: Result) -> list[dict[str, Any]]:
    try:
        from greenpatch.compat_tests import stall
    except ImportError:
        result.notes.append("stall monitor not available (compat_tests/stall.py missing)")
        return []
    if not stall_file.exists():
        return []
    records = stall.read_records(stall_file)
    spots: list[dict[str, Any]] = stall.aggregate(records)
    return spots


def _probe(
    manifest: Manifest,
    env: Environment,
    urls: dict[str, str],
    root: Path,
    without: list[str],
) -> dict[str, Any]:
    probe = manifest.probe
    assert probe is not None
    try:
        from greenpatch.compat_tests import probes
    except ImportError:
        return {"error": "probes not available (compat_tests/probes.py missing)"}
    missing = [name for name in probe.services if name not in urls]
    if missing:
        return {"error": f"probe needs services the manifest does not declare: {missing}"}
    started = time.monotonic()
    try:
        outcome: dict[str, Any] = probes.run_probe(
            python=env.python,
            callable=probe.callable,
            concurrency=probe.concurrency,
            delay=probe.delay,
            service_urls={name: urls[name] for name in probe.services},
            timeout=120.0,
            # As the suite runs: the manifest's env, in the source tree, and a
            # probe module next to the manifest found first.
            env={**manifest.env, "PYTHONPATH": _python_path(manifest.path.parent)},
            cwd=str(root),
            call=(
                {"args": list(probe.args), "kwargs": dict(probe.kwargs)}
                if probe.args is not None
                else None
            ),
            without=without,
        )
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "wall": time.monotonic() - started}
    return outcome
