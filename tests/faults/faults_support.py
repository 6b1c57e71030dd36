"""Running a real ``gantune search`` process and watching what it prints, for the fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "pipelines.cli"]


class Driver:
    """A ``gantune search`` process (``argv`` after ``gantune``) in a session of its own, its output
    read line by line: each progress line (every trial end, and every few seconds) is a moment to
    look at what the search wrote."""

    def __init__(self, argv: list[str]):
        self.process = subprocess.Popen([*CLI, *argv], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def until(self, ready: Callable[[], bool]) -> None:
        """Read lines until ``ready()`` holds; fails if the search ends first."""
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if ready():
                return
        raise AssertionError(f"the search ended (exit {self.process.wait()}) before the moment came:\n"
                             f"{self.output[-3000:]}")

    def finish(self, signum: int | None = None, timeout_s: float = 600) -> int:
        """Send ``signum`` to the driver alone (as ``timeout`` does; SIGKILL goes to its whole session,
        as a machine's end does), read the rest of its output and return its exit code."""
        try:
            if signum == signal.SIGKILL:
                os.killpg(self.process.pid, signal.SIGKILL)
            elif signum is not None:
                self.process.send_signal(signum)
            self.lines += [line.rstrip("\n") for line in self.process.stdout]
            return self.process.wait(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
