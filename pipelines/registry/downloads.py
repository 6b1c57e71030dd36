"""Artifact transfers from MLflow that report themselves in one line each, not as a progress bar.

MLflow draws a tqdm bar for every download. On a terminal it redraws in place; piped into a log,
each redraw is one more carriage-return segment, dozens of them run together on one line. So
when stderr is not a terminal the bar is switched off with MLflow's documented switch
(``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``). Either way each download then says once, when it is
done, what came, how much and how long it took.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterator


@contextmanager
def progress_bar_off() -> Iterator[None]:
    """MLflow's artifact progress bar off inside the block; the variable is as it was afterwards."""
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR as BAR

    previous = BAR.get_raw()
    BAR.set("false")
    try:
        yield
    finally:
        if previous is None:
            BAR.unset()
        else:
            BAR.set(previous)


def bar_only_on_a_terminal():
    """MLflow's progress bar where it redraws in place (stderr is a terminal), off elsewhere."""
    return nullcontext() if sys.stderr.isatty() else progress_bar_off()


def size_text(size: int) -> str:
    """Bytes as people read them: 812 B, 45.3 kB, 1.2 MB."""
    if size < 1000:
        return f"{size} B"
    for unit in ("kB", "MB", "GB"):
        size /= 1000
        if size < 1000 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


def download(what: str, fetch: Callable[..., str], *args: Any, **kwargs: Any) -> Path:
    """``fetch(*args, **kwargs)``, an MLflow download that returns the local path, reported on stderr
    as ``downloaded WHAT (N files, SIZE) in S s``; returns the local path."""
    stream = sys.stderr
    started = time.monotonic()
    with bar_only_on_a_terminal():
        local = Path(fetch(*args, **kwargs))
    seconds = time.monotonic() - started
    files = [local] if local.is_file() else [path for path in local.rglob("*") if path.is_file()]
    count = f"{len(files)} file" + ("" if len(files) == 1 else "s")
    size = size_text(sum(path.stat().st_size for path in files))
    print(f"downloaded {what} ({count}, {size}) in {seconds:.1f} s", file=stream, flush=True)
    return local
