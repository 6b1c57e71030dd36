"""A long step of a command, announced: what it does when it starts, and how long it took.

On a terminal the two share one line; in a log (stdout not a terminal) each is a line of its own,
so nothing is overwritten and every line is complete when it is written.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def announced(what: str) -> Iterator[None]:
    """Print ``what`` now and the seconds it took when the block ends (not if it raises)."""
    terminal = sys.stdout.isatty()
    print(f"{what} ...", end=" " if terminal else "\n", flush=True)
    started = time.monotonic()
    yield
    took = f"{time.monotonic() - started:.1f} s"
    print(took if terminal else f"{what}: done in {took}", flush=True)
