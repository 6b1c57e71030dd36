"""A Ray Tune trial that hosts a cohort: many Optuna trials of one shape trained as one model.

With ``budget.cohort`` K > 1, a search's Tune trials are cohort hosts, and its trials are the
hosts' *slot-trials*. A host asks the search's Optuna study for configs (ask/tell on its RDB
storage, so the sampler sees every slot-trial's result whichever host ran it) and fills its K
slots; it refills a slot when its trial ends, until it has started its share of ``num_samples``.
Its first trial's shape keys become its own (a ``PartialFixedSampler`` fixes them for every later
ask), so a preset that searches a shape key spreads its values over hosts.

Every evaluation boundary is one Tune report holding each reporting slot-trial's report
(``COHORT_REPORTS``); a slot-trial is pruned there by Optuna's successive-halving pruner, set as
the preset's ASHA (grace period, reduction factor). Its checkpoint folder holds each slot-trial's
single-trial checkpoint (``slots/<id>/``: what tracking logs, a resume continues and ``export``
reads), the boundary's best one again at the top (what ``best.json`` points at), and
``cohort.json``, which Optuna trial each slot holds.
"""

from __future__ import annotations

import json
import tempfile
import traceback
from pathlib import Path
from typing import Any

import torch
from ray import tune

from pipelines.search.algorithms import build_pruner, build_sampler
from pipelines.search.outcome import end_status
from pipelines.search.trials.cohort_plan import (
    BEST_SLOT_TRIAL,
    COHORT_FILE,
    COHORT_HOST_KEY,
    COHORT_REPORTS,
    HOST_ATTR,
    SHAPE_MISSES_ALLOWED,
    SLOTS_FOLDER,
    CohortPlan,
    slot_trial_id,
)
from pipelines.search.trials.single import checkpoints_newest_first, dataset_for, release_memory, tune_metrics
from trainables.cohort.cohort import Cohort
from trainables.cohort.slots import SHAPE_KEYS, SlotReport, cohort_shape
from trainables.core.checkpoint import CHECKPOINT_FILE, SAMPLES_FILE
from trainables.core.config import config_from_dict
from trainables.core.report_loop import ReportFiles
from trainables.errors import UnsupportedVersion
from trainables.quality.objectives import best_of


def _reopened(study, number: int):
    """Optuna trial ``number``, still running, as a ``Trial`` to report to after a restart.

    Optuna hands out a ``Trial`` only from ``ask``; the one way back to a running trial from
    another process is its constructor, which takes the storage's trial id (a private attribute).
    """
    import optuna

    frozen = study.get_trials(deepcopy=False)[number]
    trial_id = getattr(frozen, "_trial_id", None)
    if trial_id is None:
        raise UnsupportedVersion(f"optuna {optuna.__version__}'s FrozenTrial has no _trial_id, which a resumed cohort "
                                 "relies on; install an optuna version gantune supports (tested: 5.0)")
    return optuna.trial.Trial(study, trial_id)


class CohortHost:
    """One host's loop: fill slots from the study, advance the cohort, hand each boundary to Tune."""

    def __init__(self, plan: CohortPlan, host: int):
        import optuna

        preset = plan.preset
        self.preset = preset
        self.quota = plan.quota(host)
        self.trial_id = tune.get_context().get_trial_id()
        self.study = optuna.load_study(study_name=plan.study_name, storage=optuna.storages.RDBStorage(plan.study_url),
                                       sampler=build_sampler(preset, seed_offset=host),
                                       pruner=build_pruner(preset))
        self.space = preset.define_by_run()
        self.cohort: Cohort | None = None
        self.trials: dict[int, Any] = {}  # slot -> its running Optuna trial
        self.started = 0
        self.shape: dict[str, Any] = {}  # the shape keys the host's first trial chose
        self._restore()

    # ----------------------------------------------------------------------- slots from the study
    def _keep_shape(self, params: dict[str, Any]) -> None:
        import optuna

        self.shape = {key: value for key, value in params.items() if key in SHAPE_KEYS}
        if self.shape:
            self.study.sampler = optuna.samplers.PartialFixedSampler(self.shape, self.study.sampler)

    def _fill(self) -> None:
        """Start trials from the study in free slots while this host's share is not all started."""
        from optuna.trial import TrialState

        misses = 0
        while self.started < self.quota and (self.cohort is None or self.cohort.free_slots()):
            trial = self.study.ask()
            config = config_from_dict(self.space.choose(trial))
            if self.cohort is None:
                self.cohort = Cohort(config, self.preset.budget.cohort, dataset_for(config))
                if not self.shape:
                    self._keep_shape(trial.params)
            elif cohort_shape(config) != self.cohort.shape_key:
                trial.set_user_attr("gantune.not_run", "another shape than its cohort's")
                self.study.tell(trial, state=TrialState.FAIL)
                misses += 1
                if misses >= SHAPE_MISSES_ALLOWED:
                    print(f"gantune cohort: {misses} trials in a row did not fit this cohort's shape; it starts no more",
                          flush=True)
                    self.quota = self.started
                continue
            slot = self.cohort.free_slots()[0]
            self.cohort.fill(slot, config)
            trial.set_user_attr(HOST_ATTR, self.trial_id)
            self.trials[slot] = trial
            self.started += 1
            misses = 0

    # --------------------------------------------------------------------------- boundaries
    def _judge(self, slot_report: SlotReport, value: float) -> str | None:
        """Tell the study how the slot-trial stands; its end (a status tag) if it ended, else None."""
        from optuna.trial import TrialState

        trial = self.trials[slot_report.slot]
        if slot_report.ended:
            self.study.tell(trial, value)
            return end_status(slot_report.report)
        trial.report(value, slot_report.report["step"])
        if trial.should_prune():
            self.study.tell(trial, state=TrialState.PRUNED)
            return end_status(slot_report.report)
        return None

    def _hand_on(self, slot_reports: list[SlotReport]) -> None:
        """One Tune report for a boundary: every slot-trial's report, and a checkpoint of the cohort."""
        metric, mode = self.preset.metric, self.preset.mode
        entries = []
        with tempfile.TemporaryDirectory(prefix="gantune-cohort-") as folder:
            for slot_report in slot_reports:
                trial = self.trials[slot_report.slot]
                metrics = tune_metrics(slot_report.report, metric, mode)
                end = self._judge(slot_report, metrics[metric])
                trial_id = slot_trial_id(self.trial_id, trial.number)
                if not metrics["diverged"]:
                    self.cohort.save_files(slot_report.slot, ReportFiles.in_folder(self._slot_folder(folder, trial_id)))
                entries.append({**metrics, "trial_id": trial_id, "number": trial.number,
                                "config": slot_report.config.to_dict(), "end": end})
                if end is not None:
                    self.cohort.retire(slot_report.slot)
                    del self.trials[slot_report.slot]
            self._save_cohort(folder)
            best = best_of(entries, mode, lambda entry: entry[metric])
            best_files = Path(folder) / SLOTS_FOLDER / best["trial_id"]
            for name in (CHECKPOINT_FILE, SAMPLES_FILE):
                if (best_files / name).is_file():
                    (Path(folder) / name).write_bytes((best_files / name).read_bytes())
            report = {metric: best[metric], "step": max(entry["step"] for entry in entries), BEST_SLOT_TRIAL: best["trial_id"],
                      COHORT_REPORTS: entries}
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))

    @staticmethod
    def _slot_folder(folder: str, trial_id: str) -> Path:
        path = Path(folder) / SLOTS_FOLDER / trial_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    # ------------------------------------------------------------------------ checkpoints
    def _save_cohort(self, folder: str) -> None:
        """Every live slot's current checkpoint (a reporting one's is there already) and ``cohort.json``."""
        slots = {}
        for slot, trial in self.trials.items():
            trial_id = slot_trial_id(self.trial_id, trial.number)
            files = ReportFiles.in_folder(self._slot_folder(folder, trial_id))
            if not files.checkpoint.is_file():
                self.cohort.save_files(slot, files)
            slots[str(slot)] = trial.number
        state = {"shape": self.shape, "slots": slots}
        (Path(folder) / COHORT_FILE).write_text(json.dumps(state))

    def _restore(self) -> None:
        """Continue from the newest checkpoint holding the cohort: its slot-trials from their own
        checkpoints, except those the study already finished (a restart after their report).

        How many trials the host has started is the study's count, not the checkpoint's: a trial
        the study saw end may have started after the checkpoint (the host died between telling the
        study and Tune saving the boundary's checkpoint), and it must not be started again."""
        from optuna.trial import FixedTrial, TrialState

        for checkpoint in checkpoints_newest_first():
            with checkpoint.as_directory() as folder:
                saved = Path(folder) / COHORT_FILE
                if not saved.is_file():
                    continue
                state = json.loads(saved.read_text())
                if state["shape"]:
                    self._keep_shape(state["shape"])
                for slot, number in state["slots"].items():
                    frozen = self.study.get_trials(deepcopy=False)[number]
                    if frozen.state != TrialState.RUNNING:
                        continue  # ended after this checkpoint: its outcome stands
                    config = config_from_dict(self.space.choose(FixedTrial(frozen.params)))
                    if self.cohort is None:
                        self.cohort = Cohort(config, self.preset.budget.cohort, dataset_for(config))
                    weights = Path(folder) / SLOTS_FOLDER / slot_trial_id(self.trial_id, number) / CHECKPOINT_FILE
                    self.cohort.fill(int(slot), config, checkpoint=weights)
                    self.trials[int(slot)] = _reopened(self.study, number)
            break
        self._recount_started()

    def _recount_started(self) -> None:
        """Count the trials this host started that ran to an end or run on. Those it had running that
        the checkpoint it continues from does not hold were lost with the process: they end FAIL,
        uncounted, and the host starts others in their place."""
        from optuna.trial import TrialState

        kept = {trial.number for trial in self.trials.values()}
        ran = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        self.started = 0
        for frozen in self.study.get_trials(deepcopy=False, states=ran):
            if frozen.user_attrs.get(HOST_ATTR) != self.trial_id:
                continue
            if frozen.state == TrialState.RUNNING and frozen.number not in kept:
                self.study.tell(frozen.number, state=TrialState.FAIL)
            else:
                self.started += 1

    def run(self) -> None:
        while True:
            self._fill()
            if self.cohort is None or not self.cohort.live_slots():
                return
            self._hand_on(self.cohort.advance())


def host_cohort(config: dict[str, Any], plan: CohortPlan, cpus: float) -> None:
    """The Tune function trainable of a cohort host (``config`` holds only its ``COHORT_HOST_KEY``)."""
    torch.set_num_threads(max(1, int(cpus)))
    host = None
    try:
        host = CohortHost(plan, config[COHORT_HOST_KEY])
        host.run()
    except BaseException as stop:
        traceback.clear_frames(stop.__traceback__)  # as train_gan: a stopped host must not stay alive
        raise
    finally:
        del host
        release_memory()
