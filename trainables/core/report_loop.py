"""The loop every caller of the trainer runs: train to the next report, save samples and a
checkpoint, hand the report on.

``gantune train`` and the Ray Tune trainable differ only in where a report's files go and who
receives the report, so each gives a ``ReportSink`` and this loop does the rest. A diverged
report saves nothing (its weights are not finite) and ends the loop.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from trainables.core.checkpoint import CHECKPOINT_FILE, SAMPLES_FILE
from trainables.core.trainer import Trainer


@dataclass(frozen=True)
class ReportFiles:
    """Where one report's checkpoint and sample picture are written."""

    checkpoint: Path
    samples: Path

    @classmethod
    def in_folder(cls, folder: str | Path) -> "ReportFiles":
        """The standard layout: ``checkpoint.pt`` and ``samples.png`` side by side."""
        return cls(Path(folder) / CHECKPOINT_FILE, Path(folder) / SAMPLES_FILE)


class ReportSink(Protocol):
    def files(self, report: dict[str, Any]) -> AbstractContextManager[ReportFiles]:
        """Where this report's files go; they must stay in place until ``hand_on`` returns."""

    def hand_on(self, report: dict[str, Any], files: ReportFiles | None) -> None:
        """Deliver a report; ``files`` is None for a diverged one, which saved nothing."""


def run_reports(trainer: Trainer, sink: ReportSink) -> dict[str, Any]:
    """Train to ``config.steps`` (or divergence), handing every report to ``sink``; returns the last
    report (the resumed state's own when no steps were left)."""
    last: dict[str, Any] = {**trainer.last_report, "step": trainer.step, "status": "completed"}
    for last in trainer.reports():
        if last["status"] == "diverged":
            sink.hand_on(last, None)
            break
        with sink.files(last) as files:
            trainer.save_samples(files.samples)
            trainer.save_checkpoint(files.checkpoint)
            sink.hand_on(last, files)
    return last
