"""``greenpatch patches``: every row of the patch registry, built-in and plugin.

It loads the plugins (their entry points) but applies nothing: the listing
says what ``patch_all()`` would do in this environment, and for a plugin whose
library is optional, whether that library is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys

from greenpatch.patcher import api
from greenpatch.patcher.registry import PatchSpec

__all__ = ["add_arguments", "rows", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per patch")


def _installed(spec: PatchSpec) -> bool:
    top = spec.target.partition(".")[0]
    if top in sys.modules:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def rows() -> list[dict[str, str]]:
    """One dict per registered patch: name, flag, target, origin, when, description."""
    api.load_plugins()
    builtin = set(api.BUILTIN_PATCH_NAMES)
    found = []
    for spec in api.registry.specs:
        if spec.on_import:
            when = (
                f"when {spec.target} is imported"
                if _installed(spec)
                else f"when {spec.target} is imported (not installed here)"
            )
        elif spec.aggressive_only:
            when = "patch_all(aggressive=True)"
        else:
            when = "patch_all()"
        found.append(
            {
                "name": spec.name,
                "flag": spec.flag,
                "target": spec.target,
                "origin": "built-in" if spec.name in builtin else "plugin",
                "when": when,
                "description": spec.description,
            }
        )
    return found


def run(args: argparse.Namespace) -> int:
    found = rows()
    if args.json:
        for row in found:
            print(json.dumps(row))
        return 0
    headers = ("name", "flag", "origin", "applies", "what")
    table = [
        (row["name"], row["flag"], row["origin"], row["when"], row["description"]) for row in found
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers[:-1])]
    line: tuple[str, ...]
    for line in [headers, *table]:
        cells = [cell.ljust(width) for cell, width in zip(line[:-1], widths)]
        print("  ".join([*cells, line[-1]]).rstrip())
    print("\nTurn one off with patch_all(FLAG=False) or `greenpatch run --without FLAG`.")
    return 0
