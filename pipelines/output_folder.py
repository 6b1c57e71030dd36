"""Checking a folder or file a command is told to write to, before it reads or writes anything else.

A path that names a file, lies under one, or sits where nothing may be created (a read-only
mount, ``/proc``) would otherwise surface as an OS traceback halfway through the command, after
work was done and perhaps after other files were written. Permission bits alone cannot tell (root
ignores them, and ``/proc`` looks writable), so the check makes and removes a probe folder.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from trainables.errors import UsageError

SQLITE_MAGIC = b"SQLite format 3\x00"


def nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists, else its closest ancestor that does: where a new folder would be made."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(flag: str, given: str | Path, path: Path) -> None:
    """``path`` (a folder that exists, or may be made) can be written; otherwise one line naming ``flag``."""
    existing = nearest_existing(path.absolute())
    reason = None if existing.is_dir() else "a file"
    if reason is None:
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".gantune-probe-", dir=existing))
        except OSError as err:
            reason = err.strerror.lower() if err.strerror else type(err).__name__
    if reason is not None:
        raise UsageError(f"{flag} {given} cannot be written: {existing} is not a writable folder ({reason}); "
                         f"give another {flag}")


def check_output_folder(flag: str, out: str | Path) -> Path:
    """``out`` as a folder that exists or can be made and written; otherwise one line naming ``flag``."""
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {out} is a file; give a folder")
    check_writable(flag, out, path)
    return path


def check_output_file(flag: str, out: str | Path) -> Path:
    """``out`` as a file that can be written into a folder that exists; otherwise one line naming ``flag``."""
    path = Path(out).expanduser()
    if path.is_dir():
        raise UsageError(f"{flag} {out} is a folder; give a file name")
    if not path.parent.exists():
        raise UsageError(f"{flag} {out}: folder {path.parent} does not exist; create it or give another {flag}")
    check_writable(flag, out, path.parent)
    return path


def is_sqlite_database(path: Path) -> bool:
    """Whether ``path`` is a file that starts with SQLite's header (a database, not just any file)."""
    try:
        with open(path, "rb") as head:
            return head.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def check_sqlite_target(flag: str, given: str, path: Path) -> None:
    """A SQLite database to write: an existing one (or an empty file), or a new file in a writable folder,
    since SQLite creates a missing file on first use but not its folder."""
    if not path.exists():
        check_output_file(flag, path)
    elif not is_sqlite_database(path) and not (path.is_file() and path.stat().st_size == 0):
        raise UsageError(f"{flag} {given}: {path} is not an SQLite database; give another {flag}")
