"""What the driver, the progress line and tracking know of cohort hosts: their config key and report
fields, how many hosts a search runs and each one's share of the trials, and a slot-trial's id and
status. Torch, Ray and Optuna stay out, so those readers import none of them for a few names.

The hosts themselves are ``pipelines.search.trials.cohort_host``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipelines.search.outcome import STATUS_TAG
from search_spaces.preset_types import Budget, SearchPreset
from trainables.quality.objectives import worst_value

COHORT_HOST_KEY = "cohort_host"  # the one key of a host's Tune config: which share of the trials it runs
COHORT_REPORTS = "cohort_reports"  # a host's report: the slot-trials' reports at this boundary
BEST_SLOT_TRIAL = "best_slot_trial"  # and which of them the top-level checkpoint belongs to
HOST_ATTR = "gantune.cohort_host"  # the Optuna user attribute naming the host a trial ran in
COHORT_FILE = "cohort.json"
SLOTS_FOLDER = "slots"
# Asks in a row whose config cannot join the host's cohort (another critic structure) before the
# host stops asking; such a trial never runs and is told FAIL.
SHAPE_MISSES_ALLOWED = 10


def is_cohort_host(trial) -> bool:
    """Whether a Tune trial hosts a cohort (its slot-trials are the search's trials)."""
    return COHORT_HOST_KEY in (trial.config or {})


def hosts_for(budget: Budget) -> int:
    """How many cohorts a search runs: enough to start every trial at once, at most ``max_concurrent``."""
    needed = math.ceil(budget.num_samples / budget.cohort)
    return min(needed, budget.max_concurrent) if budget.max_concurrent else needed


@dataclass(frozen=True)
class CohortPlan:
    """What every host of a search shares: the preset, the study, and how many hosts split the trials."""

    preset: SearchPreset
    study_name: str
    study_url: str
    hosts: int

    def quota(self, host: int) -> int:
        """Host ``host``'s share of ``num_samples``: the shares add up to it exactly."""
        total = self.preset.budget.num_samples
        return total // self.hosts + (host < total % self.hosts)


def slot_trial_id(host_trial_id: str, number: int) -> str:
    """A slot-trial's id: its host's Tune trial id and its Optuna trial number."""
    return f"{host_trial_id}_t{number:04d}"


def slot_trial_status(frozen, mode: str) -> str | None:
    """The status tag of a slot-trial as its Optuna trial records it; None while it runs.

    A host tells the study a slot-trial's last value when it completes or diverges (a diverged
    one's value is the metric's worst), prunes it when it is stopped early, and fails it when it
    was lost with its host (``interrupted``: it ran, but never ended)."""
    state = frozen.state.name
    if state == "COMPLETE":
        return STATUS_TAG["diverged" if frozen.value == worst_value(mode) else "finished"]
    if state == "PRUNED":
        return STATUS_TAG["stopped"]
    return "interrupted" if state == "FAIL" else None
