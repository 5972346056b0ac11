"""An example greenpatch plugin: a cooperative ``input()``.

``input()`` blocks the whole OS thread until a line arrives on stdin; under the
hub that would freeze every greenlet.  This plugin adds a patch, ``input``, that
makes ``builtins.input`` wait for stdin to be readable on the hub first.

Install it (``pip install docs/examples/plugin``) and ``patch_all()`` applies it;
``patch_all(input=False)`` leaves it out.  See docs/patching.md.
"""

from __future__ import annotations

import builtins
import sys
from typing import Any

from greenpatch.hub import wait_read
from greenpatch.patcher import PatchSpec, PluginAPI

__target__ = "builtins"
__implements__ = ["input"]

_original_input = builtins.input


def input(prompt: Any = "") -> str:
    """``input()`` that lets other greenlets run while it waits for a line."""
    if prompt:
        sys.stdout.write(str(prompt))
        sys.stdout.flush()
    try:
        fileno = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return _original_input()  # not a real descriptor (e.g. a StringIO): nothing to wait on
    wait_read(fileno)
    return _original_input()


SPEC = PatchSpec(
    name="input",
    target="builtins",
    green=__name__,
    flag="input",
    description="builtins.input waits for stdin on the hub",
)


def register(api: PluginAPI) -> None:
    """The entry point: called once by greenpatch with its plugin API."""
    api.register(SPEC)
    api.add_hook("after_patch_all", _announce)


def _announce(flags: dict[str, bool]) -> None:
    if flags.get("input", True) and "--verbose-plugins" in sys.argv:
        print("greenpatch-input: builtins.input is cooperative", file=sys.stderr)
