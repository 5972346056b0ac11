"""The ``greenpatch`` command: one entry point for every room.

    greenpatch run [--no-thread ...] script.py [args]   run a program under the patch
    greenpatch run -m module [args]                     ... a module, e.g. -m pytest

Only the standard library and greenpatch's own light core are imported before
``run`` patches, so that nothing of the target is imported unpatched.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import importlib.util
import os
import runpy
import sys
from collections.abc import Sequence

import greenpatch
from greenpatch.patcher.api import PATCH_ALL_FLAGS

PATCH_FLAGS = PATCH_ALL_FLAGS


def _run_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = subparsers.add_parser(
        "run",
        help="run a script or module with the standard library patched",
        description=(
            "Patch the standard library, then run the target exactly as `python script.py` "
            "or `python -m module` would (sys.argv, __main__, exit code)."
        ),
    )
    for flag in PATCH_FLAGS:
        run.add_argument(
            f"--no-{flag}",
            dest=flag,
            action="store_false",
            help=f"leave {flag} unpatched",
        )
    run.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="FLAG",
        help="leave out a patch_all flag, plugins' included (e.g. --without zmq); repeatable",
    )
    run.add_argument(
        "--aggressive",
        action="store_true",
        help="also remove what cannot be cooperative (select.epoll, ...)",
    )
    run.add_argument("-m", dest="module", help="run a library module as a script")
    run.add_argument("target", nargs="*", help="script.py [args] (or the module's args with -m)")


# Commands implemented in their rooms: name -> (help, module with add_arguments/run).
# A room's module is imported only when its command is chosen, so that
# `greenpatch run` imports nothing unpatched beyond argparse and the core.
ROOM_COMMANDS = {
    "serve": (
        "serve a WSGI application (module:app) under the patch",
        "greenpatch.server.cli",
    ),
    "compat": (
        "run client libraries' own test suites plain and patched, and judge them",
        "greenpatch.compat_tests.cli",
    ),
    "patches": (
        "list the patches patch_all() applies, built-in and from plugins",
        "greenpatch.patcher.listing",
    ),
    "report": (
        "merge compat results and render them (Markdown, HTML, JUnit XML)",
        "greenpatch.reports.cli",
    ),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``selected``'s room module is imported to add its options."""
    parser = argparse.ArgumentParser(
        prog="greenpatch",
        description="Cooperative blocking code on a libev hub, and the evidence that it works.",
    )
    parser.add_argument(
        "--version", action="version", version=f"greenpatch {greenpatch.__version__}"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    _run_parser(subparsers)
    for name, (help_text, module_name) in ROOM_COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            importlib.import_module(module_name).add_arguments(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    flags = {flag: getattr(args, flag) for flag in PATCH_FLAGS}
    if args.module is None and not args.target:
        print("greenpatch run: give a script (greenpatch run app.py) or -m module", file=sys.stderr)
        return 2
    if args.module is None and not os.path.exists(args.target[0]):
        print(f"greenpatch run: can't open file {args.target[0]!r}: no such file", file=sys.stderr)
        return 2
    if args.module is not None:
        problem = _missing_module(args.module, before_patch=True)
        if problem:
            print(f"greenpatch run: {problem}", file=sys.stderr)
            return 2

    for flag in args.without:
        flags[flag] = False
    try:
        greenpatch.patch_all(aggressive=args.aggressive, **flags)
    except TypeError as exc:  # an unknown --without flag; the message lists the known ones
        print(f"greenpatch run: {exc}", file=sys.stderr)
        return 2
    if args.module is not None:
        # As `python -m`: the current directory first on sys.path -- only after
        # the patch, whose own imports a `select.py` in the project must not shadow.
        if not _safe_path():
            sys.path.insert(0, os.getcwd())
        # A dotted name is looked up only now: finding ``a.b`` imports ``a``, and
        # nothing of the target may be imported before the patch.
        problem = _missing_module(args.module, before_patch=False)
        if problem:
            print(f"greenpatch run: {problem}", file=sys.stderr)
            return 2
        sys.argv = [args.module, *args.target]
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    else:
        script = args.target[0]
        sys.argv = list(args.target)
        if not _safe_path():
            sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
        runpy.run_path(script, run_name="__main__")
    return 0


def _safe_path() -> bool:
    """``python -P`` / ``PYTHONSAFEPATH`` (3.11+): python itself then puts neither the
    current directory nor the script's directory first on ``sys.path``, so neither
    do we (a test run from an unpacked source tree must import the installed
    package, not the tree's unbuilt copy)."""
    return bool(getattr(sys.flags, "safe_path", False))


def _missing_module(name: str, *, before_patch: bool) -> str | None:
    """Why ``-m name`` cannot run, or None.  Before the patch only the top-level
    name is looked up: ``find_spec`` of a top-level name searches ``sys.path``
    without importing anything, while a dotted name would import its parents.

    Rejected: letting runpy fail.  Its "No module named x" comes as a traceback
    after the patch, exit status 1, like an error of the program itself."""
    if not name or name.startswith(".") or name.endswith(".") or ".." in name:
        return f"-m {name!r}: not a module name"
    top = name.partition(".")[0]
    look_up = top if before_patch else name
    if not before_patch and look_up == top:
        return None  # already checked before the patch
    try:
        spec = importlib.util.find_spec(look_up)
        if spec is None and before_patch:
            # The current directory is not on sys.path yet (see _run): searched
            # on its own, by the path finder, which imports nothing.
            spec = importlib.machinery.PathFinder.find_spec(look_up, [os.getcwd()])
    except (ImportError, ValueError) as exc:  # a parent that fails to import, or is no package
        return f"-m {name}: {type(exc).__name__}: {exc}"
    if spec is None:
        return f"-m {name}: no module named {look_up!r} (sys.path[0] is {os.getcwd()})"
    return None


def _check_bind(value: str) -> str | None:
    """Why ``serve --bind value`` cannot work, or None.  The same forms as the
    server's ``parse_address`` (``host:port``, ``:port``, ``[::1]:port``), checked
    here so that a typo is one line and exit 2 -- the server parses it only after
    the patch and the application import, and raises a ValueError traceback.
    Rejected: importing ``greenpatch.server.base.parse_address`` here, which would
    import the hub and sockets before ``serve`` patches."""
    _host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        return f"--bind {value!r}: expected HOST:PORT, port 0 to 65535 (e.g. 127.0.0.1:8000)"
    return None


def _split_run_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split ``run``'s own options from the target's: everything after the script
    name (or after ``-m module``) belongs to the target, even ``--help``."""
    takes_value = False
    for index, arg in enumerate(argv):
        if index == 0:
            continue  # "run"
        if takes_value:
            takes_value = False
            continue
        if arg == "--without":
            takes_value = True
            continue
        if arg == "-m":
            return argv[: index + 2], argv[index + 2 :]
        if arg.startswith("-m") and len(arg) > 2:
            return argv[: index + 1], argv[index + 1 :]
        if arg == "--":
            return argv[:index], argv[index + 1 :]
        if not arg.startswith("-"):
            return argv[:index], argv[index:]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    if argv and argv[0] == "run":
        head, target = _split_run_argv(argv)
        args = parser.parse_args(head)
        args.target = target
    else:
        args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "serve":
        problem = _check_bind(args.bind)
        if problem:
            print(f"greenpatch serve: {problem}", file=sys.stderr)
            return 2
    if args.command in ROOM_COMMANDS:
        module = importlib.import_module(ROOM_COMMANDS[args.command][1])
        return int(module.run(args))
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
