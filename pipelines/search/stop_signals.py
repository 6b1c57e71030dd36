"""SIGINT and SIGTERM end a search the way Ctrl+C ends a Ray Tune run: cleanly and resumably.

Tune stops its loop gracefully on SIGINT or SIGUSR1 (it saves the experiment state, ends the
trials, calls every callback's ``on_experiment_end``), while SIGTERM — what ``timeout``, a batch
scheduler or a closed terminal sends — hits Ray's own handler and kills the driver mid-write. While
a search runs, both signals are caught here, remembered (the exit code and the MLflow runs say
which one stopped the search), and passed on to Tune as its documented SIGUSR1. A second signal
stops at once, without the clean-up.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

CAUGHT = (signal.SIGINT, signal.SIGTERM)
# Tune installs its own SIGINT handler unless told not to; while a search runs, SIGINT is handled here.
TUNE_SIGINT_SWITCH = "TUNE_DISABLE_SIGINT_HANDLER"


# Signals belong to the process; so does the one that stopped its search. The tracking callback
# reads it here (a resumed search's callbacks are unpickled copies, so no object can be shared).
_received: int | None = None


def stopped_by() -> int | None:
    """The signal that stopped this process's search, if one did."""
    return _received


class StopSignals:
    """Catches SIGINT and SIGTERM for a search and says which one stopped it."""

    @property
    def received(self) -> int | None:
        return _received

    def stop(self, signum: int) -> None:
        global _received
        _received = _received or signum

    @property
    def exit_code(self) -> int:
        """The shell's code for a process ended by the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + int(self.received or 0)

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt  # a second signal: stop now
        self.stop(signum)
        print(f"{signal.Signals(signum).name}: stopping the search; running trials keep their last checkpoint "
              "(send it again to stop at once)", file=sys.stderr, flush=True)
        if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, signal.SIG_IGN, None):
            raise KeyboardInterrupt  # Tune's loop has not started: nothing is running to end gracefully
        os.kill(os.getpid(), signal.SIGUSR1)

    @contextmanager
    def caught(self) -> Iterator["StopSignals"]:
        """Catch SIGINT and SIGTERM inside the block (main thread only; elsewhere they keep their handlers)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        global _received
        _received = None
        previous = {signum: signal.getsignal(signum) for signum in (*CAUGHT, signal.SIGUSR1)}
        switch = os.environ.get(TUNE_SIGINT_SWITCH)
        os.environ[TUNE_SIGINT_SWITCH] = "1"
        for signum in CAUGHT:
            signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if switch is None:
                os.environ.pop(TUNE_SIGINT_SWITCH, None)
            else:
                os.environ[TUNE_SIGINT_SWITCH] = switch
