"""One builder at a time per cache entry (an unpacked sdist, a virtualenv).

Two harness runs may share the cache (two terminals, ``--jobs``, a CI matrix on
one machine).  An entry is built in place, so without a lock two runs would
build into the same directory at once, or one would delete (as "half-built")
the directory the other is still filling.

The protocol:

- an entry is complete once its stamp file exists; the stamp is written last,
  atomically, and a complete entry is never removed -- so a reader that sees
  the stamp needs no lock;
- a builder takes ``fcntl.flock`` on ``<entry>.lock`` (beside the entry, never
  deleted: deleting a lock file lets two processes lock two different files),
  then looks for the stamp again (another run may have finished meanwhile);
- a directory without a stamp found *under the lock* was left by a builder that
  died (the kernel releases a dead process's flock): it is removed and rebuilt.

While it waits, the run says so on stderr, naming the pid that holds the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["cache_entry_lock", "is_complete", "remove_half_built", "write_stamp"]


def _say(message: str) -> None:
    sys.stderr.write(f"greenpatch compat: {message}\n")
    sys.stderr.flush()


@contextlib.contextmanager
def cache_entry_lock(entry: Path, what: str) -> Iterator[None]:
    """Hold the build lock of ``entry`` for the block (blocking, with a message)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    lock_path = entry.with_name(entry.name + ".lock")
    with open(lock_path, "a+", encoding="ascii") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            _say(
                f"waiting for another greenpatch run (pid {holder}) to finish "
                f"{what} in {entry} (lock {lock_path})"
            )
            fcntl.flock(handle, fcntl.LOCK_EX)
        # Who holds it, for the message of the next run that has to wait.
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_complete(entry: Path, stamp: str) -> bool:
    return (entry / stamp).exists()


def remove_half_built(entry: Path, what: str) -> None:
    """Call under the lock: an unstamped entry there was left by a dead builder."""
    if entry.exists() or entry.is_symlink():
        _say(f"removing half-built {what} left by an interrupted run: {entry}")
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def write_stamp(entry: Path, stamp: str, text: str) -> None:
    """Mark ``entry`` complete: temp file + rename, so the stamp is never half there."""
    temporary = entry / f".{stamp}.{os.getpid()}.tmp"
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, entry / stamp)
