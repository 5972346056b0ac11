"""The Python environment a suite runs in: one isolated virtualenv per
(library, version, Python, requirements), built once and cached.

Both runs of a suite use the same environment, so that the patch is the only
difference between them.  Runs that share the cache build an environment one at
a time (a lock per environment, ``_cachelock.py``); a directory left without
its stamp by a run that died is rebuilt.  uv builds it when it is on PATH (much faster), else
``venv`` + pip.

greenpatch itself goes in as a *link* to this checkout's ``src/`` (a ``.pth``
file) when the checkout has its extension built: the harness must test the code
in the tree now, not a copy frozen when the environment was cached.  Otherwise
(an installed greenpatch, or an unbuilt checkout) it is installed with pip.

The link is part of the environment's identity: the checkout's path is in the
cache key and the ``.pth`` is written while the environment is built, before
its stamp, and never rewritten.  Two checkouts sharing a cache therefore get
two environments.  (The first design re-pointed one shared environment's link
at whichever checkout ran last: a run from checkout A could start its patched
pytest after a run from checkout B had re-pointed it, and test B's greenpatch.
Rejected too: PYTHONPATH in the runs' environment -- a suite that starts
subprocesses with a clean environment would lose it.)

A library given by path is installed from the tree as it is now: the tree's
content digest (``sources.tree_digest``) is in the key, so an edited tree gets
an environment of its own instead of the copy installed the first time.
Rejected: an editable install (compiled extensions and the installed version
go stale, and a src-less layout is imported from the tree anyway), and
reinstalling into the cached environment (a run sharing it would see the
library change under it).  The price: one environment per state of the tree;
``uv`` makes that cheap, and old ones can be deleted from the cache at will.

``environment = "current"`` in a manifest, or ``--python /path/to/python``,
runs in an existing environment as it is (the harness's own tests do this, so
that they need no network and build nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import greenpatch
from greenpatch.compat_tests._cachelock import (
    cache_entry_lock,
    is_complete,
    remove_half_built,
    write_stamp,
)
from greenpatch.compat_tests.manifest import Manifest
from greenpatch.compat_tests.sources import Source, requirement

__all__ = [
    "Environment",
    "EnvironmentError_",
    "find_interpreter",
    "installed_packages",
    "prepare_environment",
]

_STAMP = ".greenpatch-env.json"
#: greenpatch's own run-time dependencies, for a linked (not installed) checkout.
_GREENPATCH_DEPENDENCIES = ("greenlet>=3.0", "cffi>=1.15")
# Also where greenpatch is imported from in that environment: the result
# records the greenpatch actually under test, as the environment sees it.
_LIST_PACKAGES = (
    "import importlib.metadata as m, importlib.util as u, json, os, platform\n"
    "s = u.find_spec('greenpatch')\n"
    "g = os.path.dirname(s.origin) if s and s.origin else ''\n"
    "print(json.dumps({'python': platform.python_version(), 'greenpatch': g, 'packages': "
    "{d.metadata['Name']: d.version for d in m.distributions() if d.metadata['Name']}}))"
)


class EnvironmentError_(RuntimeError):
    """The environment could not be built; the message names the failing step."""


@dataclass
class Environment:
    python: str
    python_version: str
    location: str
    packages: dict[str, str] = field(default_factory=dict)
    reused: bool = True
    #: The directory greenpatch is imported from in this environment ("" if none).
    greenpatch_path: str = ""

    def version_of(self, distribution: str) -> str | None:
        """The installed version of ``distribution`` (names compared as PEP 503 does)."""
        wanted = _normalize(distribution)
        for name, version in self.packages.items():
            if _normalize(name) == wanted:
                return version
        return None


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def find_interpreter(request: str | None) -> tuple[str, bool]:
    """The interpreter for ``--python``, and whether it is an existing environment.

    ``None`` -> this interpreter's version, in a new environment; ``"3.12"`` ->
    ``python3.12`` from PATH, in a new environment; a path -> that interpreter,
    used as it is.
    """
    if request is None:
        return sys.executable, False
    if "/" in request or Path(request).is_file():
        path = Path(request).expanduser()
        if not path.exists():
            raise EnvironmentError_(f"--python {request}: no such interpreter")
        return str(path), True
    for candidate in _candidates(request):
        if _runs_as(candidate, request):
            return candidate, False
    raise EnvironmentError_(
        f"--python {request}: no working python{request} on PATH or in pyenv "
        "(install it, or give the interpreter's path)"
    )


def _candidates(version: str) -> list[str]:
    """``pythonX.Y`` on PATH, then pyenv's installs: a pyenv shim is on PATH for every
    installed version but fails for one that is not selected."""
    found = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found += sorted(str(p) for p in pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))
    return [path for path in found if path]


def _runs_as(python: str, version: str) -> bool:
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.strip() == version


def installed_packages(python: str) -> tuple[str, dict[str, str]]:
    version, packages, _ = _inspect(python)
    return version, packages


def _inspect(python: str) -> tuple[str, dict[str, str], str]:
    """(Python version, installed distributions, greenpatch's package directory)."""
    done = subprocess.run(
        [python, "-c", _LIST_PACKAGES], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise EnvironmentError_(f"{python} cannot list its packages: {done.stderr.strip()[-300:]}")
    data = json.loads(done.stdout)
    packages = dict(sorted(data["packages"].items(), key=lambda kv: kv[0].lower()))
    return str(data["python"]), packages, str(data.get("greenpatch") or "")


def prepare_environment(
    manifest: Manifest, source: Source, python_request: str | None, cache: Path
) -> Environment:
    interpreter, existing = find_interpreter(python_request)
    if manifest.environment == "current" and python_request is None:
        interpreter, existing = sys.executable, True
    if existing:
        version, packages, linked = _inspect(interpreter)
        return Environment(
            interpreter, version, location="existing", packages=packages, greenpatch_path=linked
        )
    base_version, _ = installed_packages(interpreter)
    short = ".".join(base_version.split(".")[:2])
    wanted = _requirements(manifest, source)
    no_deps = list(manifest.requirements_no_deps)
    identity = [*wanted, "--no-deps", *no_deps]
    if manifest.install_library and source.digest:
        identity.append(f"--library-tree={source.digest}")  # see the module docstring
    checkout = _checkout_src()
    if checkout is not None:
        identity.append(f"--greenpatch-link={checkout}")
    key = hashlib.sha256("\n".join(identity).encode()).hexdigest()[:10]
    location = cache / "envs" / f"{manifest.distribution}-{source.version}-py{short}-{key}"
    python = str(location / "bin" / "python")
    reused = is_complete(location, _STAMP)
    if not reused:
        with cache_entry_lock(location, f"building the environment of {manifest.name}"):
            # Another run may have built it while this one waited for the lock.
            reused = is_complete(location, _STAMP)
            if not reused:
                remove_half_built(location, "environment")
                try:
                    refresh = (manifest.distribution,) if source.kind == "path" else ()
                    _build(location, interpreter, wanted, no_deps, refresh=refresh)
                    if checkout is not None:
                        _link_greenpatch(python, checkout)
                except BaseException:
                    # Leave no half-built environment to confuse the next run (or the disk).
                    shutil.rmtree(location, ignore_errors=True)
                    raise
                stamp = {"requirements": wanted, "requirements_no_deps": no_deps, "key": identity}
                write_stamp(location, _STAMP, json.dumps(stamp, indent=1))
    version, packages, linked = _inspect(python)
    return Environment(
        python,
        version,
        location=str(location),
        packages=packages,
        reused=reused,
        greenpatch_path=linked,
    )


def _requirements(manifest: Manifest, source: Source) -> list[str]:
    wanted: list[str] = []
    if manifest.install_library:
        if manifest.source_kind == "sdist":
            wanted.append(requirement(manifest.distribution, source.version))
        else:
            wanted.append(str(source.root))
    wanted.extend(manifest.requirements)
    if _checkout_src() is not None:
        wanted.extend(_GREENPATCH_DEPENDENCIES)
    else:
        wanted.append(_greenpatch_requirement())
    return wanted


def _build(
    location: Path,
    interpreter: str,
    wanted: list[str],
    no_deps: list[str],
    refresh: tuple[str, ...] = (),
) -> None:
    """``refresh``: distributions built from a local tree, which uv must rebuild:
    its cache of a local build is keyed by pyproject.toml/setup.py, not by the
    code (pip never caches a build from a local directory)."""
    location.parent.mkdir(parents=True, exist_ok=True)
    python = str(location / "bin" / "python")
    uv = shutil.which("uv")
    if uv is not None:
        _step([uv, "venv", "-q", "--python", interpreter, str(location)], "create (uv venv)")
        fresh = [f"--refresh-package={name}" for name in refresh]
        _step([uv, "pip", "install", "-q", "--python", python, *fresh, *wanted], "install (uv pip)")
        if no_deps:
            uv_pip = [uv, "pip", "install", "-q", "--python", python, "--no-deps"]
            _step([*uv_pip, *no_deps], "install --no-deps (uv pip)")
    else:
        _step([interpreter, "-m", "venv", str(location)], "create (python -m venv)")
        pip = [python, "-m", "pip", "--disable-pip-version-check"]
        _step([*pip, "install", "-q", *wanted], "install (pip)")
        if no_deps:
            _step([*pip, "install", "-q", "--no-deps", *no_deps], "install --no-deps (pip)")


def _step(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = (done.stderr or done.stdout).strip()[-1500:]
        raise EnvironmentError_(f"environment {what} failed: {' '.join(command)}\n{output}")


def _checkout_src() -> Path | None:
    """This checkout's ``src/`` when greenpatch runs from a built checkout, else None."""
    package = Path(greenpatch.__file__).resolve().parent
    src = package.parent
    built = any(package.joinpath("hub").glob("_libev*.so"))
    if src.name == "src" and (src.parent / "pyproject.toml").exists() and built:
        return src
    return None


def _greenpatch_requirement() -> str:
    repo = Path(greenpatch.__file__).resolve().parent.parent.parent
    if (repo / "pyproject.toml").exists():
        return str(repo)
    return f"greenpatch=={greenpatch.__version__}"


def _link_greenpatch(python: str, src: Path) -> None:
    """Put ``src`` on the new environment's path: called while it is built,
    under its lock and before its stamp, so nobody runs in it yet."""
    done = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    Path(done.stdout.strip(), "greenpatch-checkout.pth").write_text(f"{src}\n")
