"""Checks of the paths that several commands read, made before they load anything.

A folder given where a YAML file is wanted would otherwise end as an OS traceback from deep
inside a loader. A data root that is missing is not an error (the dataset is downloaded into
it), but a download that fails must not leave its half-made folders behind, so the command
loads its data inside ``removed_if_failed``.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from trainables.errors import UsageError


def check_not_a_folder(flag: str, given: str | None) -> None:
    """``given`` names a file to read, not a folder; a missing file is left to the loader, which names it."""
    if given is not None and Path(given).expanduser().is_dir():
        raise UsageError(f"{flag} {given} is a folder; give a YAML file")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def removed_if_failed(folder: Path) -> Iterator[None]:
    """If the body raises, what it added to ``folder`` is removed, and so is ``folder`` if the body made it."""
    top = folder.absolute()
    while not top.parent.exists():
        top = top.parent
    existed = top.exists()
    before = set(os.listdir(top)) if top.is_dir() else set()
    try:
        yield
    except BaseException:
        if not existed:
            _remove(top)
        elif top.is_dir():
            for name in set(os.listdir(top)) - before:
                _remove(top / name)
        raise
