"""Files that appear whole or not at all: write beside the target, flush to disk, rename over it.

Checkpoints, evaluator caches, search records and final metrics are read by other processes
(Tune, MLflow callbacks, a resumed run) while training goes on; a crash mid-write must never leave
half a file. (Sample pictures taken during training are not: a torn one is redrawn at the next
evaluation, and the checkpoint beside it is what a resume reads.)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary file in ``path``'s folder, then rename it to ``path``.

    The temporary name keeps ``path``'s suffix, so writers that pick a format from the file
    name (image savers) see the right one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(handle)
    try:
        write(Path(temporary))
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
