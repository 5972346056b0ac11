"""The typed stub of the cffi extension (hub/_libev.pyi) matches what is built.

mypy checks calls into libev against the stub; a stub that drifted from the
cdef would check them against the wrong signatures, so the two are compared
here: the same constants, the same functions, the same number of arguments.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from greenpatch.hub._libev import lib

HUB = Path(__file__).resolve().parents[2] / "src" / "greenpatch" / "hub"


def _cdef() -> str:
    source = (HUB / "_libev_build.py").read_text()
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "CDEF" for target in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, str)
            return value
    raise AssertionError("no CDEF in _libev_build.py")


def _cdef_functions() -> dict[str, int]:
    functions = {}
    for match in re.finditer(r"^[\w ]+?[\s*](\w+)\(([^)]*)\);", _cdef(), re.MULTILINE):
        name, params = match.group(1), match.group(2).strip()
        functions[name] = 0 if params in ("", "void") else params.count(",") + 1
    return functions


def _cdef_constants() -> set[str]:
    return set(re.findall(r"^#define (\w+) \.\.\.$", _cdef(), re.MULTILINE))


def _stub_lib() -> tuple[dict[str, int], set[str]]:
    tree = ast.parse((HUB / "_libev.pyi").read_text())
    lib_class = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "_Lib"
    )
    functions = {}
    constants = set()
    for item in lib_class.body:
        if isinstance(item, ast.FunctionDef):
            arguments = item.args.posonlyargs + item.args.args
            functions[item.name] = len(arguments) - 1  # self
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            constants.add(item.target.id)
    return functions, constants


def test_the_stub_declares_every_function_of_the_cdef_with_its_argument_count():
    stub_functions, _ = _stub_lib()
    assert stub_functions == _cdef_functions()


def test_the_stub_declares_every_constant_of_the_cdef():
    _, stub_constants = _stub_lib()
    assert stub_constants == _cdef_constants()


def test_everything_the_stub_declares_exists_in_the_built_extension():
    functions, constants = _stub_lib()
    missing = sorted(name for name in (*functions, *constants) if not hasattr(lib, name))
    assert missing == []
