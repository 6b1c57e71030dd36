"""Running a real ``gantune search`` process and watching it, for the fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

from checks import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "pipelines.cli"]


class Driver:
    """A ``gantune search`` process (``argv`` after ``gantune``) in a session of its own; a thread
    keeps what it prints in ``lines`` while the test polls what the search writes."""

    def __init__(self, argv: list[str]):
        self.process = subprocess.Popen([*CLI, *argv], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def until(self, ready: Callable[[], bool], what: str, timeout_s: float = 300) -> None:
        """Poll ``ready()`` until it holds; fails, with the output's tail, if the search ends first."""
        try:
            wait_for(ready, what, self.process, timeout_s=timeout_s)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.output[-3000:]}") from None

    def finish(self, signum: int | None = None, timeout_s: float = 600) -> int:
        """Send ``signum`` to the driver alone (as ``timeout`` does; SIGKILL goes to its whole session,
        as a machine's end does), wait for the end of its output and return its exit code."""
        try:
            if signum == signal.SIGKILL:
                os.killpg(self.process.pid, signal.SIGKILL)
            elif signum is not None:
                self.process.send_signal(signum)
            code = self.process.wait(timeout=timeout_s)
            self.reader.join(timeout=60)
            return code
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
