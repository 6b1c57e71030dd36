"""MLflow writes kept in order until the tracking server takes them.

A tracking server that restarts (an upgrade, a crash, a full disk freed) must not cost a search
its curves, and must not stall it: Tune's driver loop runs the tracking callback, so a write that
waits minutes on MLflow's own retries holds every trial's results back. Writes therefore go
through an outbox: each is tried at once, and while the server is away they queue up (files they
upload are copied first, since Tune deletes old checkpoints) and are sent again, oldest first, at
every later event and at the end of the search.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Callable

# A write waits this long for the server before it is kept for later, instead of MLflow's default
# of seven retries with exponential back-off (minutes).
REQUEST_RETRIES = "1"
REQUEST_TIMEOUT_S = "20"
RETRY_PERIOD_S = 2.0
# How long the end of a search waits for an absent server before it gives up on the writes left.
DRAIN_S = 180.0


def fail_fast_requests() -> None:
    """Make MLflow's HTTP client give up on an absent server in seconds (unless the user tuned it)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", REQUEST_RETRIES)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", REQUEST_TIMEOUT_S)


def is_outage(err: Exception) -> bool:
    """Whether a failed write may succeed later: the server was unreachable or answered 5xx.

    A refused write (a 4xx: bad value, missing run) will never succeed and is not retried.
    """
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException

    if isinstance(err, (RequestException, ConnectionError, TimeoutError)):
        return True
    if isinstance(err, MlflowException):
        return err.get_http_status_code() >= 500
    return False


class Outbox:
    """Runs writes in the order given; those the server cannot take now wait for the next flush."""

    def __init__(self, describe_server: str):
        self.server = describe_server
        self.pending: deque[tuple[str, Callable[[], None]]] = deque()
        self.spool = Path(tempfile.mkdtemp(prefix="gantune-outbox-"))
        self.lost = 0
        self._outage_since: float | None = None
        self._last_try = -float("inf")

    def keep_copy(self, source: str | Path, name: str) -> Path:
        """A private copy of a file a later write uploads, safe from Tune deleting the original."""
        target = Path(tempfile.mkdtemp(dir=self.spool)) / name
        shutil.copyfile(source, target)
        return target

    def put(self, what: str, write: Callable[[], None]) -> None:
        """Queue one write (``what`` names it in messages) and send everything that can go now."""
        self.pending.append((what, write))
        self.flush(force=self._outage_since is None)

    def flush(self, force: bool = False) -> bool:
        """Send queued writes, oldest first; True once none is left. During an outage, tries at most
        every ``RETRY_PERIOD_S`` unless ``force``."""
        if not self.pending:
            return True
        if not force and time.monotonic() - self._last_try < RETRY_PERIOD_S:
            return False
        self._last_try = time.monotonic()
        while self.pending:
            what, write = self.pending[0]
            try:
                write()
            except Exception as err:
                if is_outage(err):
                    self._note_outage(err)
                    return False
                self.lost += 1
                print(f"tracking: {what} was refused by {self.server} ({_first_line(err)}); skipped",
                      file=sys.stderr, flush=True)
            self.pending.popleft()
        if self._outage_since is not None:
            print(f"tracking: {self.server} is back after {time.monotonic() - self._outage_since:.0f} s; "
                  "every kept write is logged", flush=True)
            self._outage_since = None
        return True

    def drain(self, timeout_s: float = DRAIN_S) -> bool:
        """At the end of a search: wait up to ``timeout_s`` for the server to take what is left;
        False when it did not come back."""
        deadline = time.monotonic() + timeout_s
        while not self.flush(force=True) and time.monotonic() < deadline:
            time.sleep(RETRY_PERIOD_S)  # waiting for a server that is down: nothing to poll but it
        if self.pending:
            self.lost += len(self.pending)
            print(f"tracking: {self.server} did not come back in {timeout_s:.0f} s; {len(self.pending)} writes "
                  "were not logged (the trials' results stay in the search folder)", file=sys.stderr, flush=True)
            self.pending.clear()
        shutil.rmtree(self.spool, ignore_errors=True)
        return self._outage_since is None

    def _note_outage(self, err: Exception) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            print(f"tracking: {self.server} is unreachable ({_first_line(err)}); keeping writes and retrying "
                  f"every {RETRY_PERIOD_S:.0f} s", file=sys.stderr, flush=True)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__
