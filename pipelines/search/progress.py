"""What a search shows while it runs and what it leaves behind: the progress line, the trial
table and ``best.json``. How each trial ended is read by ``pipelines.search.outcome``."""

from __future__ import annotations

import json
import math
import numbers
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ray import tune

from pipelines.search.outcome import OUTCOMES, STATUS_TAG, outcome
from pipelines.search.trials.cohort_plan import BEST_SLOT_TRIAL, COHORT_REPORTS
from trainables.core.checkpoint import CHECKPOINT_FILE, RESTORE_NOTE, load_checkpoint
from trainables.core.config import config_from_dict
from trainables.quality.objectives import best_of, is_better

PROGRESS_PERIOD_S = 10.0
# How a slot-trial's end (its status tag) reads in the progress line and the trial table.
SLOT_OUTCOME = {tag: name for name, tag in STATUS_TAG.items()}


def cohort_trials(trial_id: str, result: dict) -> list[tuple[str, dict]]:
    """The (trial id, report) pairs of one Tune result: a cohort host's slot-trials, or the trial itself."""
    if COHORT_REPORTS in result:
        return [(entry["trial_id"], entry) for entry in result[COHORT_REPORTS]]
    return [(trial_id, result)]


class SearchProgress(tune.Callback):
    """Prints one line of trial counts and the best metric so far, on every trial end and every 10 s.

    ``total`` is the search's trial budget, so the line says how far along it is ("3/8 done").
    Each trial's best value is kept from its reports as they arrive (and in Tune's experiment
    snapshot through ``get_state``, so a resumed search remembers it): Tune's own per-trial
    summaries are not public API.
    """

    def __init__(self, metric: str, mode: str, total: int | None = None, stream: TextIO | None = None):
        self.metric = metric
        self.mode = mode
        self.total = total
        self.stream = stream
        self._best_by_trial: dict[str, float] = {}
        self._slot_outcomes: dict[str, str] = {}
        self._started = time.monotonic()
        self._printed = -math.inf

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info: Any) -> None:
        if result.get(RESTORE_NOTE):
            print(f"trial {trial.trial_id}: {result[RESTORE_NOTE]}", file=self.stream or sys.stdout, flush=True)
        for trial_id, report in cohort_trials(trial.trial_id, result):
            if COHORT_REPORTS in result:
                self._slot_outcomes[trial_id] = SLOT_OUTCOME.get(report["end"], "running")
            value = report.get(self.metric)
            if isinstance(value, numbers.Real) and math.isfinite(value) and not report.get("diverged"):
                if is_better(value, self._best_by_trial.get(trial_id), self.mode):
                    self._best_by_trial[trial_id] = float(value)

    def get_state(self) -> dict | None:
        if not self._best_by_trial and not self._slot_outcomes:
            return None
        return {"best_by_trial": dict(self._best_by_trial), "slot_outcomes": dict(self._slot_outcomes)}

    def set_state(self, state: dict) -> None:
        self._best_by_trial = dict(state["best_by_trial"])
        self._slot_outcomes = dict(state.get("slot_outcomes", {}))

    def line(self, trials: list) -> str:
        counts = dict.fromkeys(OUTCOMES, 0)
        if self._slot_outcomes:  # a cohort search: its trials are the hosts' slot-trials
            for name in self._slot_outcomes.values():
                counts[name] += 1
        else:
            for trial in trials:
                counts[outcome(trial.status, trial.last_result or {})] += 1
        done = sum(counts[name] for name in STATUS_TAG)  # every way a trial ends
        elapsed = time.monotonic() - self._started
        parts = " | ".join(f"{name} {count}" for name, count in counts.items())
        so_far = f"{done}/{self.total} done" if self.total is not None else f"{done} done"
        best = best_of(self._best_by_trial.items(), self.mode, lambda pair: pair[1]) if self._best_by_trial else None
        shown = f"best {self.metric} {best[1]:.4g} (trial {best[0]})" if best else f"best {self.metric} -"
        return f"[{elapsed:6.0f}s] {so_far} | {parts} | {shown}"

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
    the trial's last one; ``get_best_checkpoint`` is the checkpoint saved with the best report. A
    cohort host's best report is its best slot-trial's, whose checkpoint its report's top holds.
    """
    scored = [r for r in results if r.metrics_dataframe is not None and metric in r.metrics_dataframe]
    if not scored:
        return None
    best = results.get_best_result(metric, mode, scope="all", filter_nan_and_inf=True)
    if BEST_SLOT_TRIAL in best.metrics_dataframe and best.best_checkpoints:
        return _best_slot_trial_record(best, metric, mode)
    # A trial that diverged at its first evaluation has no checkpoint (it only wins if all diverged).
    checkpoint = best.get_best_checkpoint(metric, mode) if best.best_checkpoints else None
    value = best_of(best.metrics_dataframe[metric].dropna().tolist(), mode)
    config = config_from_dict(best.config).to_dict()
    return _record(best.metrics["trial_id"], config, metric, mode, value, checkpoint)


def _best_slot_trial_record(host, metric: str, mode: str) -> dict[str, Any]:
    """A cohort host's best kept checkpoint and its own report: a report whose checkpoint a killed
    driver never registered cannot be the one best.json points at."""
    checkpoint, metrics = best_of(host.best_checkpoints, mode, lambda kept: kept[1][metric])
    weights = Path(checkpoint.path) / CHECKPOINT_FILE
    config = load_checkpoint(weights)["config"] if weights.is_file() else {}  # none if every slot diverged
    return _record(metrics[BEST_SLOT_TRIAL], config, metric, mode, metrics[metric], checkpoint)


def _record(trial_id: str, config: dict[str, Any], metric: str, mode: str, value: float, checkpoint) -> dict[str, Any]:
    path = Path(checkpoint.path) / CHECKPOINT_FILE if checkpoint else None
    return {"trial_id": trial_id, "config": config, "metric": metric, "mode": mode, "value": value,
            "checkpoint": str(path) if path else None}


def trial_table(results, metric: str, mode: str) -> str:
    """One row per trial (a cohort's slot-trials each get theirs): id, loss, outcome, steps trained, best metric."""
    rows = [("trial", "loss", "outcome", "step", f"best {metric}")]
    for result in results:
        if result.metrics_dataframe is not None and COHORT_REPORTS in result.metrics_dataframe:
            rows += _slot_rows(result, metric, mode)
            continue
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


def _slot_rows(result, metric: str, mode: str) -> list[tuple[str, ...]]:
    """A cohort host's slot-trials, from the reports in its ``result.json``."""
    by_trial: dict[str, list[dict]] = {}
    for line in (Path(result.path) / "result.json").read_text().splitlines():
        for trial_id, report in cohort_trials("", json.loads(line)) if line else []:
            by_trial.setdefault(trial_id, []).append(report)
    rows = []
    for trial_id, reports in by_trial.items():
        last = reports[-1]
        values = [r[metric] for r in reports if not r.get("diverged")]
        ended = SLOT_OUTCOME.get(last["end"], "errored" if result.error else "stopped")
        rows.append((trial_id, str(last["config"].get("loss", "?")), ended, str(last["step"]),
                     f"{best_of(values, mode):.4g}" if values else "-"))
    return rows
