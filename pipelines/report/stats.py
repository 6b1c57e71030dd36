"""The numbers a search report shows, as pure functions of trial records.

Best-so-far curves follow Lucic et al. (2018, "Are GANs created equal?"): the best value found
against the budget spent, one curve per loss, so that losses are compared at equal budget rather
than by their single luckiest trial. Trials count in the order they started; a trial without a
value (it diverged or errored before its first evaluation) spends budget and finds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from typing import Sequence

from pipelines.report.store import TrialRecord
from trainables.quality.objectives import best_first, is_better

STATUS_ORDER = ("completed", "early_stopped", "diverged", "errored")
ALL_TRIALS = "all trials"


def best_so_far(values: Sequence[float | None], mode: str) -> list[float | None]:
    """The best of ``values[:i + 1]`` for every ``i``; ``None`` until a first value is seen."""
    best: float | None = None
    curve = []
    for value in values:
        if value is not None and is_better(value, best, mode):
            best = value
        curve.append(best)
    return curve


@dataclass(frozen=True)
class Curve:
    """Best-so-far of one group of trials, against their count and their cumulative trial-seconds."""

    label: str
    trials: list[int]
    seconds: list[float]
    best: list[float | None]


def _curve(label: str, trials: Sequence[TrialRecord], mode: str) -> Curve:
    return Curve(
        label,
        list(range(1, len(trials) + 1)),
        list(accumulate(trial.seconds for trial in trials)),
        best_so_far([trial.best_value for trial in trials], mode),
    )


def progress_curves(trials: Sequence[TrialRecord], mode: str) -> list[Curve]:
    """One curve per loss (by name), and one over all trials when more than one loss was tried."""
    losses = sorted({trial.loss for trial in trials})
    curves = [_curve(loss, [trial for trial in trials if trial.loss == loss], mode) for loss in losses]
    if len(curves) > 1:
        curves.append(_curve(ALL_TRIALS, trials, mode))
    return curves


@dataclass(frozen=True)
class StatusRow:
    status: str
    count: int
    seconds: float


def status_rows(trials: Sequence[TrialRecord]) -> list[StatusRow]:
    """Trials and trial-seconds per status: the four endings always, then any other status seen."""
    seen = [trial.status for trial in trials]
    order = [*STATUS_ORDER, *sorted(set(seen) - set(STATUS_ORDER))]
    return [
        StatusRow(status, seen.count(status), sum(trial.seconds for trial in trials if trial.status == status))
        for status in order
    ]


def saved_seconds(trials: Sequence[TrialRecord], max_steps: int | None) -> float | None:
    """Trial-seconds early stopping saved: each stopped trial's remaining steps at its own pace.

    A trial stopped at step s of ``max_steps`` after t seconds would have needed about
    t * (max_steps - s) / s more. None when the search's step budget is not recorded.
    """
    if not max_steps:
        return None
    return sum(
        trial.seconds * (max_steps - trial.last_step) / trial.last_step
        for trial in trials
        if trial.status == "early_stopped" and 0 < trial.last_step < max_steps
    )


def ranked(trials: Sequence[TrialRecord], mode: str, count: int) -> list[TrialRecord]:
    """The ``count`` trials with the best values, best first (earlier trials win ties)."""
    measured = [trial for trial in trials if trial.best_value is not None]
    return sorted(measured, key=best_first(mode, lambda trial: trial.best_value))[:count]
