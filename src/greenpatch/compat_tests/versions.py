"""Which release of a library a run tests.

A run asks for a *version item*; this module turns it into one exact release:

``latest`` (and no ``--version`` at all, for a manifest without a ``version`` pin)
    the newest release on the package index;
``8.2.0`` or ``==8.2.0``
    that release;
``5.*`` or ``==5.*``
    the newest release of that line (what the CI matrix's "previous major" is);
any other specifier (``>=6,<7``)
    the newest release it admits.

The manifest's ``versions`` is the range the manifest is *known to work for*:
it never narrows what is tested (a release newer than the range is what a user
upgrading wants to know about), it decides what the result says about it.

The releases come from ``pip index versions`` (it honours the user's index
configuration and each release's ``Requires-Python``); offline, the complete
sources already in the cache stand in, and the result says so.

Rejected: reading the index's JSON API directly -- private indexes and
``pip.conf`` settings would be ignored, and only pip knows all of them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

__all__ = [
    "LATEST",
    "Resolution",
    "VersionError",
    "choose",
    "index_versions",
    "is_exact",
    "parse_version_items",
    "specifier_for",
]

LATEST = "latest"
_LINE = re.compile(r"(==)?\d+(\.\d+)*\.\*")


class VersionError(ValueError):
    """A version item that names no release; the message says what was expected."""


@dataclass(frozen=True)
class Resolution:
    """The exact release a run tests, and how it was chosen (a line of the result's notes)."""

    version: str
    how: str
    #: Newer-first releases to fall back on when ``version``'s tests cannot be had
    #: (an sdist missing from the index): the next newest that the item admits.
    fallbacks: tuple[str, ...] = ()


def is_exact(item: str) -> str | None:
    """``"8.2.0"`` or ``"==8.2.0"`` -> ``"8.2.0"``; anything else -> None."""
    text = item.strip()
    if text.startswith("=="):
        text = text[2:].strip()
    if not text or text.endswith(".*") or any(c in text for c in "<>=!~, "):
        return None
    try:
        Version(text)
    except InvalidVersion:
        return None
    return text


def specifier_for(item: str) -> SpecifierSet | None:
    """The releases an item admits; None for ``latest`` (every release)."""
    text = item.strip()
    if text == LATEST:
        return None
    exact = is_exact(text)
    if exact is not None:
        return SpecifierSet(f"=={exact}")
    if _LINE.fullmatch(text):
        return SpecifierSet(text if text.startswith("==") else f"=={text}")
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise VersionError(
            f"version {item!r}: expected 'latest', a release (8.2.0), a line (5.*) "
            "or a specifier (>=6,<7)"
        ) from None


def parse_version_items(values: Iterable[str]) -> list[str]:
    """``--version`` values -> items, in order, without duplicates.

    A comma separates items when every piece is an item on its own
    (``5.2.1,6.4.0,latest``); otherwise the comma belongs to one specifier
    (``>=6,<7``).
    """
    items: list[str] = []
    for value in values:
        pieces = [piece.strip() for piece in value.split(",")]
        single = all(
            piece == LATEST or is_exact(piece) or _LINE.fullmatch(piece) for piece in pieces
        )
        for item in pieces if single else [value.strip()]:
            if not item:
                raise VersionError(f"--version {value!r}: an empty version")
            specifier_for(item)  # raises VersionError for nonsense
            if item not in items:
                items.append(item)
    return items


def index_versions(distribution: str, python_version: str | None = None) -> list[str]:
    """The releases of ``distribution`` on the package index, newest first.

    ``python_version`` ("3.9") filters by each release's ``Requires-Python`` for
    that interpreter instead of this one.  Raises ``VersionError`` with pip's
    words when the index cannot be asked.
    """
    command = [sys.executable, "-m", "pip", "index", "versions", distribution]
    command += ["--disable-pip-version-check"]
    if python_version:
        command += ["--python-version", python_version]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    match = re.search(r"^Available versions:(.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        said = (done.stderr.strip() or done.stdout.strip())[-400:] or "nothing"
        raise VersionError(
            f"could not list the releases of {distribution} on the package index (pip said: {said})"
        )
    return [text.strip() for text in match.group(1).split(",") if text.strip()]


def _newest_first(releases: Iterable[str]) -> list[str]:
    parsed = []
    for text in releases:
        try:
            parsed.append((Version(text), text))
        except InvalidVersion:
            continue
    return [text for _, text in sorted(parsed, reverse=True)]


def choose(item: str, releases: Sequence[str]) -> list[str]:
    """The releases ``item`` admits, newest first (pre-releases only when asked by name)."""
    exact = is_exact(item)
    if exact is not None:
        return [exact]
    specifier = specifier_for(item)
    ordered = _newest_first(releases)
    if specifier is None:
        return [text for text in ordered if not Version(text).is_prerelease]
    return list(specifier.filter(ordered))


def in_range(version: str, known: str | None) -> bool | None:
    """Whether ``version`` lies in the manifest's known range (None: no range, or
    a version label that is not a release, such as a git ref)."""
    if not known:
        return None
    try:
        return Version(version) in SpecifierSet(known)
    except (InvalidVersion, InvalidSpecifier):
        return None
