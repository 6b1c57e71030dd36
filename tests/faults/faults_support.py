"""Running a real ``gantune search`` process and reading what Tune wrote, for the fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable

from checks import TEST_PRESETS, trial_rows

REPO_ROOT = Path(__file__).resolve().parents[2]
PRESET = TEST_PRESETS / "interrupted_grid25.yaml"
CLI = [sys.executable, "-m", "pipelines.cli"]


def one_finished_one_checkpointed(experiment: Path) -> bool:
    """A finished trial and a running one with a checkpoint: the moment the signal tests."""
    trials = trial_rows(experiment).values()
    finished = [rows for rows in trials if rows[-1]["status"] == "completed"]
    running = [rows for rows in trials if rows[-1]["status"] == "running"]
    return bool(finished) and bool(running)


def a_trial_reported(experiment: Path) -> bool:
    return bool(trial_rows(experiment))


def interrupt(signum: int, storage: Path, name: str, *flags: str,
              ready: Callable[[Path], bool] = one_finished_one_checkpointed) -> tuple[int, list[str]]:
    """Start a search, send ``signum`` to its driver once ``ready`` holds for its Tune experiment
    (by default: a trial finished and another is mid-run); returns the exit code and the lines it printed."""
    driver = subprocess.Popen(
        [*CLI, "search", "--config", str(PRESET), "--storage", str(storage), "--name", name, *flags],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    lines: list[str] = []
    try:
        # Each progress line (every trial end, and every few seconds) is a moment to look.
        for line in driver.stdout:
            lines.append(line.rstrip("\n"))
            if ready(storage / name / "tune"):
                driver.send_signal(signum)
                break
        lines += [line.rstrip("\n") for line in driver.stdout]
        return driver.wait(timeout=300), lines
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
