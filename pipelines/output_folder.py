"""Checking a folder a command is told to write to, before it reads or writes anything else.

A path that names a file, or lies under one, would otherwise surface as an OS traceback halfway
through the command, after work was done and perhaps after other files were written.
"""

from __future__ import annotations

import os
from pathlib import Path

from trainables.errors import UsageError


def check_output_folder(flag: str, out: str | Path) -> Path:
    """``out`` as a folder that exists or can be made; otherwise one line naming ``flag``."""
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {out} is a file; give a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {out} cannot be written: {existing} is not a writable folder")
    return path
