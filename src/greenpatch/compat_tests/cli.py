"""``greenpatch compat run|list``: the harness on the command line.

    greenpatch compat run (SUITE_OR_MANIFEST... | --all) [--version ITEMS]
        [--python X.Y|PATH] [--out DIR] [--only plain|patched] [--jobs N]
        [--service NAME=URL] [--allow-network] [--fail-on regressions|none]
        [--cache-dir DIR] [--without FLAG]...
    greenpatch compat list
    greenpatch compat matrix [--github] [--python X.Y]...

``--version`` takes a comma-separated list (``5.2.1,6.4.0,latest``), each item
a release, a line (``5.*``) or ``latest`` (versions.py); every suite runs at
every item, one result each.

``--without FLAG`` (repeatable) leaves a ``patch_all`` flag out of the patched
run and of the probe -- a built-in one (``thread``) or a plugin's (``zmq``) --
so that "patched without the plugin" is a result of its own beside "plain" and
"patched" (its file and its row in a report say what was left out).  A flag
this greenpatch does not know is a usage error, before any work.

Exit status of ``run``: 0 when every suite ran with no regression; 1 when a
suite has regressions or could not run (unless ``--fail-on none``); 2 for a
usage problem (bad manifest, unwritable ``--out``), found before any work; 130
after Ctrl-C (partial results are written, marked incomplete).

Only argparse and the standard library are imported at module level: rich and
the harness are imported by the handlers, when a command runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["HELP", "add_arguments", "main", "run"]

MODES = ("plain", "patched")
#: What makes `compat run` exit 1: "regressions" (or a suite that could not run),
#: "not-run" (only a suite that could not run: the harness itself failed), "none".
FAIL_ON = ("regressions", "not-run", "none")


class UsageError(Exception):
    """A problem with the command line or its inputs, reported before any work."""


HELP = "run client libraries' own test suites plain and patched, and judge them"


def add_arguments(compat: argparse.ArgumentParser) -> None:
    """Add ``run`` and ``list`` to the ``greenpatch compat`` parser (the top-level
    cli's room-command protocol: it creates ``compat`` and hands it over)."""
    compat.description = (
        "Run a client library's own test suite twice -- plain and under greenpatch -- "
        "and report regressions, hangs, crashes, loop stalls and cooperation."
    )
    commands = compat.add_subparsers(dest="compat_command", metavar="SUBCOMMAND")
    commands.required = True
    run_parser = commands.add_parser("run", help="run suites and write one JSON result per suite")
    run_parser.add_argument("suites", nargs="*", metavar="SUITE_OR_MANIFEST")
    run_parser.add_argument(
        "--all", action="store_true", help="run every built-in suite (see `compat list`)"
    )
    run_parser.add_argument(
        "--version",
        action="append",
        dest="versions",
        metavar="ITEMS",
        help="releases to test: 8.2.0,5.*,latest (default: the manifest's, usually the newest)",
    )
    run_parser.add_argument(
        "--python",
        help="X.Y: a new environment on pythonX.Y; a path: run in that interpreter's environment",
    )
    run_parser.add_argument(
        "--out", default="reports", type=Path, help="result directory (reports/)"
    )
    run_parser.add_argument("--only", choices=MODES, help="run one mode only")
    run_parser.add_argument("--jobs", type=int, default=1, help="suites run at once (1)")
    run_parser.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="use an existing server, e.g. redis=redis://127.0.0.1:6379/0",
    )
    run_parser.add_argument(
        "--allow-network",
        action="store_true",
        help="let tests reach addresses other than loopback",
    )
    run_parser.add_argument("--fail-on", choices=FAIL_ON, default="regressions")
    run_parser.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="FLAG",
        help="leave a patch_all flag out of the patched run and the probe, a plugin's "
        "included (e.g. --without zmq; see `greenpatch patches`); repeatable",
    )
    run_parser.add_argument(
        "--cache-dir", type=Path, help="sources and environments (~/.cache/greenpatch)"
    )
    # Hidden: seconds between progress lines when stdout is not a terminal (the
    # issue asks for at most 10); tests shorten it instead of waiting.
    run_parser.add_argument("--progress-interval", type=float, default=10.0, help=argparse.SUPPRESS)
    run_parser.set_defaults(compat_handler=_handle_run)
    listing = commands.add_parser("list", help="show the built-in suites")
    listing.set_defaults(compat_handler=_handle_list)
    matrix = commands.add_parser(
        "matrix", help="print the CI matrix: tox env names, or --github JSON"
    )
    matrix.add_argument(
        "--github", action="store_true", help="a GitHub Actions strategy.matrix (JSON)"
    )
    matrix.add_argument(
        "--python", action="append", dest="pythons", metavar="X.Y", help="Python versions"
    )
    matrix.set_defaults(compat_handler=_handle_matrix)


def _check_extra() -> None:
    """The harness's display needs the ``compat`` extra; say so before any work."""
    try:
        import rich  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"needs the compat extra ({exc.name} is missing): pip install 'greenpatch[compat]'"
        ) from exc


def run(args: argparse.Namespace) -> int:
    """Run the ``compat`` sub-command parsed into ``args``."""
    try:
        _check_extra()
        code: int = args.compat_handler(args)
    except UsageError as exc:
        print(f"greenpatch compat: {exc}", file=sys.stderr)
        return 2
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """``greenpatch compat ...`` on its own (the top-level cli calls ``run``)."""
    parser = argparse.ArgumentParser(prog="greenpatch")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    add_arguments(subparsers.add_parser("compat", help=HELP, description=HELP))
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    return run(args)


def _check_out_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise UsageError(f"--out {out}: not writable ({exc.strerror or exc})") from exc


def _parse_services(values: list[str], manifests: Sequence[Any] = ()) -> dict[str, str]:
    from greenpatch.compat_tests.manifest import KNOWN_SERVICES

    # The suites' own servers (command services) may be given too.
    own = [
        spec.name
        for manifest in manifests
        for spec in (*manifest.services, *(s for w in manifest.when for s in w.services))
        if spec.command
    ]
    known = (*KNOWN_SERVICES, *dict.fromkeys(own))
    services = {}
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not url:
            raise UsageError(f"--service {value!r}: expected NAME=URL")
        if name not in known:
            raise UsageError(f"--service {value!r}: unknown service; known: {known}")
        services[name] = url
    return services


def _check_without(values: list[str]) -> list[str]:
    """``--without`` flags, each a ``patch_all`` flag (built-in or a plugin's):
    sorted and unique, or one ``UsageError`` listing the known flags."""
    import warnings

    from greenpatch.patcher.api import load_plugins, registry

    with warnings.catch_warnings():
        # A plugin that fails to load is `greenpatch patches`'s news, not this
        # command's: its flag is simply unknown here.
        warnings.simplefilter("ignore")
        load_plugins()
    known = sorted({spec.flag for spec in registry.specs})
    unknown = [flag for flag in dict.fromkeys(values) if flag not in known]
    if unknown:
        names = ", ".join(unknown)
        raise UsageError(
            f"--without {names}: not a patch_all flag; known: {', '.join(known)} "
            "(see `greenpatch patches`)"
        )
    return sorted(set(values))


def _handle_run(args: argparse.Namespace) -> int:
    from greenpatch.compat_tests.harness import (
        HarnessOptions,
        PreconditionError,
        check_preconditions,
        default_cache_dir,
    )
    from greenpatch.compat_tests.manifest import ManifestError, builtin_suites, resolve_suite
    from greenpatch.compat_tests.versions import VersionError, parse_version_items

    if args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if not 0 < args.progress_interval <= 3600:
        raise UsageError("--progress-interval: expected seconds, more than 0")
    if args.all and args.suites:
        raise UsageError("give suites by name or --all, not both")
    if not args.all and not args.suites:
        raise UsageError("name the suites to run (see `greenpatch compat list`) or give --all")
    try:
        manifests = [resolve_suite(name) for name in (args.suites or builtin_suites())]
    except ManifestError as exc:
        raise UsageError(str(exc)) from exc
    names = [manifest.name for manifest in manifests]
    if len(set(names)) != len(names):
        raise UsageError(f"a suite is named twice: {names}")
    args.without = _check_without(args.without)
    try:
        items: list[str | None] = list(parse_version_items(args.versions or [])) or [None]
    except VersionError as exc:
        raise UsageError(str(exc)) from exc
    for manifest in manifests:
        if len(items) > 1 and manifest.source_kind != "sdist":
            # A local tree or a clone is one version: several results would be one run, repeated.
            raise UsageError(
                f"{manifest.name}: --version names {len(items)} releases, but its tests come "
                f"from a {'local tree' if manifest.source_kind == 'path' else 'git clone'}, "
                "which is one version"
            )
    # Absolute: the suites run with their own working directory.
    args.out = args.out.resolve()
    _check_out_dir(args.out)
    options = HarnessOptions(
        out_dir=args.out,
        cache_dir=args.cache_dir.resolve() if args.cache_dir else default_cache_dir(),
        version=None,
        python=args.python,
        only=args.only,
        services=_parse_services(args.service, manifests),
        allow_network=args.allow_network,
        reproduce_args=_reproduce_args(args),
        without=args.without,
    )
    try:
        # An unwritable cache, a path source that is not there: one line and
        # exit 2 now, not a "not run" result after the other suites ran.
        check_preconditions(manifests, options)
    except PreconditionError as exc:
        raise UsageError(str(exc)) from exc
    jobs = [
        _Job(manifest, item, options, several=len(items) > 1)
        for manifest in manifests
        for item in items
    ]
    return _run_all(jobs, args)


class _Job:
    """One suite at one version item: its options and its name on the progress display."""

    def __init__(self, manifest: Any, item: str | None, options: Any, several: bool) -> None:
        import dataclasses

        self.manifest = manifest
        # A local tree is the version it is: no item applies (harness.py).
        self.label = f"{manifest.name} {item}" if several and item else manifest.name
        version_args = ["--version", item] if item else []
        self.options = dataclasses.replace(
            options, version=item, reproduce_args=[*version_args, *options.reproduce_args]
        )


def _reproduce_args(args: argparse.Namespace) -> list[str]:
    """The options of this command that change a suite's result (``--version``:
    the job's own item, added per job)."""
    out: list[str] = []
    for option in ("python", "only"):
        value = getattr(args, option)
        if value is not None:
            out += [f"--{option}", str(value)]
    for service in args.service:
        out += ["--service", service]
    if args.allow_network:
        out.append("--allow-network")
    for flag in args.without:
        out += ["--without", flag]
    return out


def _run_all(jobs: list[_Job], args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from rich.console import Console

    from greenpatch.compat_tests import runner
    from greenpatch.compat_tests.display import (
        LogProgressListener,
        ProgressListener,
        print_summary,
        status,
        summary_console,
    )
    from greenpatch.compat_tests.harness import RelabeledListener, run_suite

    console = Console(stderr=True)
    results = []
    # A CI job is stopped with SIGTERM: clean up exactly as for Ctrl-C.  Only the
    # first signal interrupts; later ones (an impatient second Ctrl-C) must not
    # break off the clean-up they would cut short -- stopping redis-server, which
    # lives in its own session and would be left running, and writing the result.
    interrupts = _Interrupts()
    previous = {
        signum: signal.signal(signum, interrupts.handle)
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    # Live bars only on a terminal: in a CI log (stdout a file or a pipe) rich's
    # bars print nothing for minutes, so plain lines with a heartbeat instead.
    listener: ProgressListener | LogProgressListener
    if sys.stdout.isatty():
        listener = ProgressListener(console)
    else:
        listener = LogProgressListener(sys.stdout, interval=args.progress_interval)

    def one_suite(job: _Job) -> Any:
        outcome = run_suite(job.manifest, job.options, RelabeledListener(listener, job.label))
        listener.finish(job.label, f"done: {status(outcome[0])[0]}: {outcome[1]}")
        return outcome

    try:
        with listener:
            for job in jobs:
                listener.add(job.label)
            if args.jobs == 1:
                for job in jobs:
                    results.append(one_suite(job))
            else:
                with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                    futures = [pool.submit(one_suite, job) for job in jobs]
                    try:
                        results = [future.result() for future in futures]
                    except KeyboardInterrupt:
                        runner.CANCEL.set()  # the workers kill their children and stop
                        raise
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: services stopped, partial results written")
        return 130
    finally:
        # After an interrupt the process is on its way out with 130: a late
        # Ctrl-C must not turn that into a KeyboardInterrupt traceback.
        if not interrupts.seen:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    print_summary(summary_console(), results)
    if args.fail_on == "none":
        return 0
    if args.fail_on == "not-run":
        failing = [r for r, _ in results if r.not_run_reason]
    else:
        failing = [r for r, _ in results if r.regressions() or r.not_run_reason]
    return 1 if failing else 0


class _Interrupts:
    """SIGINT/SIGTERM handler: the first raises KeyboardInterrupt, later ones wait."""

    def __init__(self) -> None:
        self.seen = False

    def handle(self, signum: int, frame: object) -> None:
        if not self.seen:
            self.seen = True
            raise KeyboardInterrupt
        # os.write: a signal handler must not take the locks of sys.stderr.
        os.write(2, b"\ngreenpatch compat: stopping services and writing results; please wait\n")


def _handle_matrix(args: argparse.Namespace) -> int:
    from greenpatch.compat_tests.manifest import builtin_suites, load_manifest
    from greenpatch.reports.matrix import DEFAULT_PYTHONS, format_github_matrix, tox_envs

    manifests = [load_manifest(path) for path in builtin_suites().values()]
    pythons = args.pythons or list(DEFAULT_PYTHONS)
    try:
        if args.github:
            print(format_github_matrix({m.name: m.matrix for m in manifests}, pythons))
        else:
            print("\n".join(tox_envs([m.name for m in manifests], pythons)))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return 0


def _handle_list(args: argparse.Namespace) -> int:
    from rich.console import Console

    from greenpatch.compat_tests.display import print_suites
    from greenpatch.compat_tests.manifest import builtin_suites, load_manifest

    print_suites(Console(), [load_manifest(path) for path in builtin_suites().values()])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
