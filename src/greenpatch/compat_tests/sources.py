"""Where a suite's tests come from: an sdist from the index, a local path, a VCS URL.

By default the tests are the library's own, from the source distribution of the
exact version under test (requests' and redis-py's sdists both carry ``tests/``),
so the suite matches the code it tests.  Sources are unpacked once into the
cache (``<cache>/sources/<dist>-<version>``) and reused; a stamp file written
last marks an unpack that finished, so an interrupted one is redone.  Runs that
share the cache take a lock per entry (``_cachelock.py``): one downloads and
unpacks, the others wait and then use it.

A local path is used in place, never copied, and hashed (``tree_digest``): the
digest keys the environment the library is installed into (environment.py), so
an edited tree is always the tree tested, and the result says which state of
the tree it judged.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from greenpatch.compat_tests._cachelock import (
    cache_entry_lock,
    is_complete,
    remove_half_built,
    write_stamp,
)
from greenpatch.compat_tests.manifest import Manifest
from greenpatch.compat_tests.versions import (
    VersionError,
    choose,
    in_range,
    index_versions,
    is_exact,
)

__all__ = [
    "Source",
    "SourceError",
    "cached_versions",
    "obtain_release",
    "prepare_source",
    "requirement",
    "tree_digest",
]

_STAMP = ".greenpatch-source-complete"


class SourceError(RuntimeError):
    """The tests could not be had; the message says what to do."""


@dataclass(frozen=True)
class Source:
    root: Path
    #: The exact version the tests belong to (for a path: the manifest's label,
    #: replaced by the installed metadata's version once the environment is ready).
    version: str
    origin: str
    kind: str = "sdist"
    #: For a path: ``tree_digest(root)``, taken before the run.
    digest: str | None = None

    def describe(self) -> dict[str, str]:
        """The result's ``source``: which tree was tested."""
        out = {"kind": self.kind, "location": str(self.root)}
        if self.digest:
            out["digest"] = self.digest
        return out


# Not part of the library's state: VCS data, caches, build output, virtualenvs
# (a ``.venv`` inside the tree is common, and hashing it would be slow and
# would change with every ``pip install``).
_SKIPPED_DIRS = frozenset({"__pycache__", "build", "dist", "node_modules"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo", ".egg-info")


def tree_digest(root: Path) -> str:
    """``sha256:<hex>`` over every file's relative path and bytes under ``root``.

    Content, not modification times: a ``git checkout`` back and forth gives
    the same digest (and so reuses the same environment), a one-character
    edit gives another.
    """
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(
            name
            for name in dirs
            if not name.startswith(".")
            and name not in _SKIPPED_DIRS
            and not name.endswith(_SKIPPED_SUFFIXES)
            and not (here / name / "pyvenv.cfg").exists()
        )
        for name in sorted(files):
            if name.endswith(_SKIPPED_SUFFIXES) or name.startswith("."):
                continue
            path = here / name
            digest.update(str(path.relative_to(root)).encode("utf-8", "surrogateescape") + b"\0")
            if path.is_symlink():
                digest.update(b"link:" + os.readlink(path).encode("utf-8", "surrogateescape"))
            elif path.is_file():
                digest.update(path.read_bytes())
            digest.update(b"\0")
    return f"sha256:{digest.hexdigest()[:16]}"


def requirement(distribution: str, spec: str) -> str:
    """``requests`` + ``2.32.3`` -> ``requests==2.32.3``; operators are kept."""
    spec = spec.strip()
    if not spec or spec == "*":
        return distribution
    if spec[0].isdigit():
        return f"{distribution}=={spec}"
    return f"{distribution}{spec}"


def prepare_source(manifest: Manifest, version_spec: str | None, cache: Path) -> Source:
    spec = version_spec or manifest.version
    if manifest.source_kind == "path":
        root = manifest.source_path
        # load_manifest checked it; this catches a tree removed since.
        if root is None or not root.is_dir():
            raise SourceError(f"{manifest.path}: source.path {root} is not a directory")
        # The tree is what it is: a --version spec cannot make it another version.
        digest = tree_digest(root)
        return Source(
            root=root,
            version=manifest.version,
            origin=f"local path {root} ({digest})",
            kind="path",
            digest=digest,
        )
    if manifest.source_kind == "vcs":
        return _vcs_source(manifest, cache)
    return _sdist_source(manifest, spec, cache)


#: How many releases, newest first, are tried when a release's tests cannot be had.
_TRIES = 3


def cached_versions(distribution: str, cache: Path) -> list[str]:
    """The releases whose tests are complete in the cache (offline, they stand in for the index)."""
    prefix = f"{distribution}-"
    sources = cache / "sources"
    if not sources.is_dir():
        return []
    return [
        entry.name[len(prefix) :]
        for entry in sources.iterdir()
        if entry.name.startswith(prefix)
        and "-vcs-" not in entry.name
        and is_complete(entry, _STAMP)
    ]


def obtain_release(
    manifest: Manifest, item: str, python_version: str | None, cache: Path
) -> tuple[Source, list[str]]:
    """The tests of the release ``item`` names (versions.py), and notes saying
    which release that is and why: the newest admitted release whose sdist can be
    had (a release published without one is passed over, and said so)."""
    notes: list[str] = []
    exact = is_exact(item)
    if exact is not None:
        candidates, how = [exact], f"the release asked for ({item})"
    else:
        try:
            releases = index_versions(manifest.distribution, python_version)
            where = "on the package index"
        except VersionError as exc:
            releases = cached_versions(manifest.distribution, cache)
            where = "in the cache (the index could not be asked)"
            notes.append(str(exc))
        candidates = choose(item, releases)
        if not candidates:
            raise SourceError(
                f"no release of {manifest.distribution} {where} matches {item!r}"
                + (f" (for Python {python_version})" if python_version else "")
            )
        how = f"the newest release {where} that {item!r} admits"
    failures: list[str] = []
    for candidate in candidates[:_TRIES]:
        try:
            source = _sdist_source(manifest, f"=={candidate}", cache)
        except SourceError as exc:
            if exact is not None:
                raise
            failures.append(f"{candidate}: {exc}")
            continue
        for failure in failures:
            notes.append(f"passed over {failure}")
        notes.insert(0, f"{manifest.distribution} {source.version}: {how}")
        known = in_range(source.version, manifest.versions)
        if known is False:
            notes.append(
                f"{source.version} is outside the releases this manifest is known to work "
                f"for ({manifest.versions}): its requirements and deselections may be out of date"
            )
        return source, notes
    raise SourceError(
        f"the tests of none of the newest {len(failures)} releases of {manifest.distribution} "
        "could be had: " + "; ".join(failures)
    )


def _sdist_source(manifest: Manifest, spec: str, cache: Path) -> Source:
    sources = cache / "sources"
    pinned = spec[2:].strip() if spec.startswith("==") else spec if spec[:1].isdigit() else None
    if pinned is None:
        return _download(manifest, spec, sources, locked=None)
    cached = sources / f"{manifest.distribution}-{pinned}"
    if not is_complete(cached, _STAMP):
        # Locked before the download: a second run waits instead of downloading too.
        with cache_entry_lock(cached, f"fetching the tests of {manifest.distribution}"):
            if not is_complete(cached, _STAMP):
                return _download(manifest, spec, sources, locked=cached)
    return Source(root=_only_child(cached), version=pinned, origin=f"sdist (cached) {cached}")


def _download(manifest: Manifest, spec: str, sources: Path, locked: Path | None) -> Source:
    """Download the sdist and unpack it into the cache (``locked``: the entry whose
    lock the caller holds, when it knew the version beforehand)."""
    sources.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=sources, prefix=".download-") as temp:
        wanted = requirement(manifest.distribution, spec)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        command += ["--disable-pip-version-check", "-q", "-d", temp, wanted]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 and "No module named 'pkg_resources'" in done.stderr:
            # pip reads an sdist's metadata by building it, and the setup.py of
            # older releases imports pkg_resources, which setuptools 82 removed:
            # build that metadata with the last setuptools that had it (the
            # tests are what we want; the library is installed the same way).
            constraint = Path(temp) / "build-constraints.txt"
            constraint.write_text("setuptools<82\n")
            done = subprocess.run(
                [*command[:4], "--build-constraint", str(constraint), *command[4:]],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "PIP_BUILD_CONSTRAINT": str(constraint)},
            )
        archives = [p for p in Path(temp).iterdir() if p.name.endswith((".tar.gz", ".zip"))]
        if done.returncode != 0 or not archives:
            raise SourceError(
                f"could not download the sdist of {wanted} from the package index "
                f"(pip said: {done.stderr.strip()[-500:] or 'nothing'}); check the version, "
                "or give the tests by path (source.kind = 'path')"
            )
        archive = archives[0]
        version = _version_from_archive(archive.name)
        target = sources / f"{manifest.distribution}-{version}"
        what = f"unpacking the tests of {manifest.distribution}"
        with contextlib.ExitStack() as stack:
            if target != locked:
                stack.enter_context(cache_entry_lock(target, what))
            if is_complete(target, _STAMP):
                # Another run unpacked it meanwhile: complete entries are never replaced
                # (a run may be using it right now).
                return Source(root=_only_child(target), version=version, origin=f"sdist {target}")
            remove_half_built(target, "tests")
            _unpack(archive, target)
            write_stamp(target, _STAMP, archive.name + "\n")
    return Source(root=_only_child(target), version=version, origin=f"sdist {archive.name}")


def _version_from_archive(filename: str) -> str:
    # sdist names are "<name>-<version>.tar.gz"; a version never holds a "-".
    stem = re.sub(r"\.(tar\.gz|zip)$", "", filename)
    return stem.rsplit("-", 1)[-1]


def _unpack(archive: Path, target: Path) -> None:
    target.mkdir(parents=True)
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(target)
        return
    with tarfile.open(archive) as bundle:
        if hasattr(tarfile, "data_filter"):
            bundle.extractall(target, filter="data")
        else:  # pragma: no cover - Python < 3.12 without the backported filters
            bundle.extractall(target)


def _only_child(directory: Path) -> Path:
    """An sdist unpacks into one ``name-version/`` folder: that is the root."""
    children = [p for p in directory.iterdir() if p.is_dir()]
    return children[0] if len(children) == 1 else directory


def _vcs_source(manifest: Manifest, cache: Path) -> Source:
    url = manifest.source_url or ""
    if not url.startswith("git+"):
        raise SourceError(
            f"{manifest.path}: source.url {url!r}: only git+URL sources are supported"
        )
    if shutil.which("git") is None:
        raise SourceError("source.kind = 'vcs' needs git on PATH")
    repo, at, ref = url[4:].rpartition("@")
    if not at or "/" in ref:  # no "@ref", or the "@" of "ssh://git@host/..."
        repo, ref = url[4:], ""
    key = hashlib.sha256(url.encode()).hexdigest()[:12]
    target = cache / "sources" / f"{manifest.distribution}-vcs-{key}"
    if not is_complete(target, _STAMP):
        with cache_entry_lock(target, f"cloning {url}"):
            if not is_complete(target, _STAMP):
                remove_half_built(target, "clone")
                command = ["git", "clone", "--depth", "1", *(["--branch", ref] if ref else [])]
                command += [repo, str(target)]
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise SourceError(f"git clone of {url} failed: {done.stderr.strip()[-500:]}")
                write_stamp(target, _STAMP, url + "\n")
    return Source(root=target, version=ref or "vcs", origin=f"vcs {url}", kind="vcs")
