"""What a search shows while it runs and what it leaves behind: the progress line, the trial
table and ``best.json``. How each trial ended is read by ``pipelines.search.outcome``."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ray import tune

from pipelines.search.outcome import OUTCOMES, outcome
from trainables.checkpoint import CHECKPOINT_FILE
from trainables.config import config_from_dict
from trainables.objectives import best_of

PROGRESS_PERIOD_S = 10.0


class SearchProgress(tune.Callback):
    """Prints one line of trial counts and the best metric so far, on every trial end and every 10 s."""

    def __init__(self, metric: str, mode: str, stream: TextIO | None = None):
        self.metric = metric
        self.mode = mode
        self.stream = stream
        self._started = time.monotonic()
        self._printed = -math.inf

    def _best(self, trials: list) -> tuple[float, str] | None:
        seen = [
            (trial.metric_analysis[self.metric][self.mode], trial.trial_id)
            for trial in trials
            if self.metric in trial.metric_analysis
        ]
        if not seen:
            return None
        return best_of(seen, self.mode, lambda pair: pair[0])

    def line(self, trials: list) -> str:
        counts = dict.fromkeys(OUTCOMES, 0)
        for trial in trials:
            counts[outcome(trial.status, trial.last_result or {})] += 1
        elapsed = time.monotonic() - self._started
        parts = " | ".join(f"{name} {count}" for name, count in counts.items())
        best = self._best(trials)
        shown = f"best {self.metric} {best[0]:.4g} (trial {best[1]})" if best else f"best {self.metric} -"
        return f"[{elapsed:6.0f}s] {parts} | {shown}"

    def _print(self, trials: list) -> None:
        print(self.line(trials), file=self.stream or sys.stdout, flush=True)
        self._printed = time.monotonic()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self._printed >= PROGRESS_PERIOD_S:
            self._print(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._print(trials)

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self._print(trials)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._print(trials)


def best_record(results, metric: str, mode: str) -> dict[str, Any] | None:
    """``best.json``: the trial with the best value ever reported and the checkpoint where it was reached.

    ``get_best_result(scope="all")`` ranks trials by their best report, but its ``.checkpoint`` is
    the trial's last one; ``get_best_checkpoint`` is the checkpoint saved with the best report.
    """
    scored = [r for r in results if r.metrics_dataframe is not None and metric in r.metrics_dataframe]
    if not scored:
        return None
    best = results.get_best_result(metric, mode, scope="all", filter_nan_and_inf=True)
    # A trial that diverged at its first evaluation has no checkpoint (it only wins if all diverged).
    checkpoint = best.get_best_checkpoint(metric, mode) if best.best_checkpoints else None
    return {
        "trial_id": best.metrics["trial_id"],
        "config": config_from_dict(best.config).to_dict(),
        "metric": metric,
        "mode": mode,
        "value": best_of(best.metrics_dataframe[metric].dropna().tolist(), mode),
        "checkpoint": str(Path(checkpoint.path) / CHECKPOINT_FILE) if checkpoint else None,
    }


def trial_table(results, metric: str, mode: str) -> str:
    """One row per trial: its id, loss, outcome, steps trained and best metric."""
    rows = [("trial", "loss", "outcome", "step", f"best {metric}")]
    for result in results:
        history = result.metrics_dataframe
        last = result.metrics if history is not None else {}
        values = history[metric].dropna().tolist() if history is not None and metric in history else []
        rows.append((
            str(last.get("trial_id", "-")),
            str((result.config or {}).get("loss", "?")),
            outcome("ERROR" if result.error else "TERMINATED", last),
            str(last.get("step", 0)),
            f"{best_of(values, mode):.4g}" if values else "-",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)
