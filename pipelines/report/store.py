"""A search read back from the MLflow store as plain records: the input of ``gantune report``.

The report is made from the store alone, so it can be drawn for any search the store holds,
after its folder is gone, and shows exactly what MLflow recorded. Everything else in the report
works on these records and never talks to MLflow.

A trial's value is the best of its logged metric curve (what its ``gantune.best_value`` tag
holds once the search ends); the curve never holds a diverged report's penalty, so a trial that
diverged at its first evaluation has no value. Its trial-seconds are its run's end time minus
its start time, and Tune's own timings (``time_total_s``) are not logged. The driver opens a
trial's run when Tune starts the trial and ends it when the trial ends. A cohort's slot-trial's
run opens at its first report (the host reports nothing sooner), so its seconds leave out the
training before it; and a cohort's slot-trials train at once in one process, so their seconds
overlap and their sum counts the host's time once per slot. A run still open counts the seconds
up to the moment it is read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.registry.downloads import bar_only_on_a_terminal
from pipelines.tracking.tags import (
    SAMPLES_ARTIFACTS,
    TAG_DATASET,
    TAG_METRIC,
    TAG_MODE,
    TAG_PARENT,
    TAG_STATUS,
    TAG_TRIAL_ID,
)
from trainables.errors import UsageError
from trainables.quality.objectives import is_better


@dataclass(frozen=True)
class TrialRecord:
    """One trial's child run, as the report needs it."""

    run_id: str
    trial_id: str
    status: str  # completed, early_stopped, diverged, errored; running while the run is open
    params: dict[str, str]
    start_ms: int
    seconds: float
    best_value: float | None = None
    best_step: int | None = None
    last_step: int = 0  # the last step the search metric was logged at

    @property
    def loss(self) -> str:
        return self.params.get("loss", "?")


@dataclass(frozen=True)
class SearchRecord:
    """A search's parent run and its trials, in the order they started."""

    run_id: str
    name: str
    experiment: str
    metric: str
    mode: str
    dataset: str
    max_steps: int | None
    trials: list[TrialRecord] = field(default_factory=list)


def _trial(client, run, metric: str, mode: str, now_ms: int) -> TrialRecord:
    history = sorted(client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step)
    best = None
    for measurement in history:
        if is_better(measurement.value, None if best is None else best.value, mode):
            best = measurement
    info = run.info
    return TrialRecord(
        run_id=info.run_id,
        trial_id=run.data.tags.get(TAG_TRIAL_ID, info.run_name or info.run_id),
        status=run.data.tags.get(TAG_STATUS, "unknown"),
        params=dict(run.data.params),
        start_ms=info.start_time,
        seconds=max(0.0, ((info.end_time or now_ms) - info.start_time) / 1000.0),
        best_value=None if best is None else best.value,
        best_step=None if best is None else best.step,
        last_step=history[-1].step if history else 0,
    )


def read_search(client, parent) -> SearchRecord:
    """The search whose parent run is ``parent``, with one record per child run."""
    tags = parent.data.tags
    metric, mode = tags.get(TAG_METRIC), tags.get(TAG_MODE)
    if not metric or mode not in ("min", "max"):
        raise UsageError(f"report: run {parent.info.run_id} records no search metric and mode")
    children = client.search_runs([parent.info.experiment_id], f"tags.`{TAG_PARENT}` = '{parent.info.run_id}'",
                                  max_results=5000)
    now_ms = int(time.time() * 1000)
    trials = sorted((_trial(client, run, metric, mode, now_ms) for run in children), key=lambda t: t.start_ms)
    max_steps = parent.data.params.get("budget.max_steps")
    return SearchRecord(
        run_id=parent.info.run_id,
        name=parent.info.run_name or parent.info.run_id,
        experiment=client.get_experiment(parent.info.experiment_id).name,
        metric=metric,
        mode=mode,
        dataset=tags.get(TAG_DATASET, ""),
        max_steps=int(max_steps) if max_steps else None,
        trials=trials,
    )


def download_samples(client, trial: TrialRecord, scratch: str | Path) -> Path | None:
    """The trial's sample picture at its best step (else its latest one); None when it logged none."""
    by_step = {}
    for entry in client.list_artifacts(trial.run_id, SAMPLES_ARTIFACTS):
        stem = Path(entry.path).stem
        if not entry.is_dir and stem.rsplit("_", 1)[-1].isdigit():
            by_step[int(stem.rsplit("_", 1)[-1])] = entry.path
    if not by_step:
        return None
    chosen = by_step.get(trial.best_step, by_step[max(by_step)])
    folder = Path(scratch) / trial.run_id
    folder.mkdir(parents=True, exist_ok=True)
    with bar_only_on_a_terminal():
        return Path(client.download_artifacts(trial.run_id, chosen, str(folder)))
