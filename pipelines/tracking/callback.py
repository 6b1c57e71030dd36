"""MLflow tracking of a search, from the driver: a parent run per search, a child run per trial.

A Tune callback turns what the driver already receives (each trial's reports and checkpoints)
into runs, so trials stay free of MLflow and any store reachable from the driver works. Each
report becomes one ``log_batch`` call (never one request per metric); each checkpoint's sample
grid becomes an artifact, and the checkpoint itself replaces the run's ``checkpoint/`` artifact
whenever it is the trial's best so far. Every run ends with its true status, whichever way the
trial ended. The parent run's id is kept in the search folder and every child carries its Ray
trial id, so a resumed search finds its runs again instead of duplicating them.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path
from typing import Any, Mapping

from ray import tune

from pipelines.search.folder import SearchFolder
from pipelines.search.outcome import end_status
from pipelines.search.stop_signals import stopped_by
from pipelines.search.trials.cohort_plan import COHORT_REPORTS, SLOTS_FOLDER, is_cohort_host
from pipelines.timed_step import announced
from pipelines.tracking.outbox import Outbox, fail_fast_requests
from pipelines.tracking.parent_run import experiment_id, new_parent, reopen, resumed_parent
from pipelines.tracking.run_values import curve_names, report_metrics
from pipelines.tracking.search_end import close_leftovers, close_run, end_interrupted, settled_slot_trials
from pipelines.tracking.summary import log_best_model, summarise_search
from pipelines.tracking.tags import (
    CHECKPOINT_ARTIFACTS,
    SAMPLES_ARTIFACTS,
    TAG_BEST_STEP,
    TAG_BEST_VALUE,
    TAG_EVALUATOR,
    TAG_METRIC,
    TAG_MODE,
    TAG_OPTUNA_TRIAL,
    TAG_PARENT,
    TAG_ROLE,
    TAG_SEARCH,
    TAG_STATUS,
    TAG_TRIAL_ID,
)
from pipelines.tracking.target import TrackingTarget, redacted
from trainables.core.checkpoint import CHECKPOINT_FILE, SAMPLES_FILE
from trainables.quality.objectives import is_better

TRIAL_TAG_KEYS = ("loss", "arch", "conditional", "dataset")
SAMPLES_IMAGE_KEY = "samples"



class _TrialRun:
    """What the callback remembers about one trial's child run (``run_id`` is None until it is open)."""

    def __init__(self, params: dict[str, str]):
        self.run_id: str | None = None
        self.params = params
        self.best_value: float | None = None
        self.pending_best: tuple[float, int] | None = None
        self.tagged = False
        self.host: str | None = None  # the cohort host's Tune trial id, for a slot-trial
        self.ended = False
        # The newest step a reopened run already holds: a trial resumed from an older checkpoint
        # reports those steps again (with the same values: training replays exactly), logged once.
        self.logged_through = -1


class MlflowTracking(tune.Callback):
    """Logs the search in ``folder`` (``settings``: its resolved preset) into ``target``.

    Every write after the parent run is made goes through an ``Outbox``, so a tracking server that
    is briefly away delays the writes instead of losing them.
    """

    def __init__(self, target: TrackingTarget, folder: SearchFolder, settings: Mapping[str, Any], resume_command: str,
                 study_url: str):
        self.target = target
        self.folder = folder
        self.search_name = folder.name
        self.settings = dict(settings)
        self.metric = settings["metric"]
        self.mode = settings["mode"]
        self.curves = curve_names(settings["dataset"])
        self.resume_command = resume_command
        self.study_url = study_url
        self.client = None
        self.outbox: Outbox | None = None
        self.experiment_id: str | None = None
        self.parent_id: str | None = None
        self.trials: dict[str, _TrialRun] = {}

    # ---------------------------------------------------------------------- the parent run
    def setup(self, **info) -> None:
        from mlflow import MlflowClient

        fail_fast_requests()
        self.outbox = Outbox(redacted(self.target.uri))
        self.client = MlflowClient(self.target.uri)
        self.experiment_id = experiment_id(self.client, self.target)
        self.parent_id = resumed_parent(self.client, self.folder) or new_parent(
            self.client, self.experiment_id, self.folder, self.settings, self.target)

    # ----------------------------------------------------------------------- child runs
    def _children(self, extra_filter: str = "") -> list:
        query = f"tags.`{TAG_PARENT}` = '{self.parent_id}'" + (f" and {extra_filter}" if extra_filter else "")
        return self.client.search_runs([self.experiment_id], query, max_results=5000)

    def _trial_run(self, trial) -> _TrialRun:
        return self._run(trial.trial_id, str(trial), trial.config)

    def _run(self, trial_id: str, name: str, trial_config: Mapping[str, Any], tags: Mapping[str, str] = {}) -> _TrialRun:
        """A trial's (or slot-trial's) child run, opened (found again by its id, or created) through the outbox."""
        if trial_id in self.trials:
            return self.trials[trial_id]
        config = {key: value for key, value in trial_config.items() if value is not None}
        state = _TrialRun({key: str(value) for key, value in config.items()})
        self.trials[trial_id] = state
        self.outbox.put(f"opening the run of trial {trial_id}",
                        lambda: self._open_child(trial_id, name, config, state, dict(tags)))
        return state

    def _open_child(self, trial_id: str, name: str, config: dict[str, Any], state: _TrialRun,
                    tags: dict[str, str]) -> None:
        from mlflow.entities import Param

        found = self._children(f"tags.`{TAG_TRIAL_ID}` = '{trial_id}'")
        if found:
            run = found[0]
            reopen(self.client, run.info.run_id)
            best = run.data.tags.get(TAG_BEST_VALUE)
            state.best_value = float(best) if best else state.best_value
            state.logged_through = self._last_logged_step(run)
            state.run_id = run.info.run_id
            return
        tags = {
            TAG_PARENT: self.parent_id,
            TAG_ROLE: "trial",
            TAG_SEARCH: self.search_name,
            TAG_TRIAL_ID: trial_id,
            TAG_METRIC: self.metric,
            TAG_MODE: self.mode,
            TAG_STATUS: "running",
            **{key: str(config[key]) for key in TRIAL_TAG_KEYS if key in config},
            **tags,
        }
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=name)
        self.client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in state.params.items()])
        state.run_id = run.info.run_id

    def _last_logged_step(self, run) -> int:
        steps = (point.step for key in run.data.metrics for point in self.client.get_metric_history(run.info.run_id, key))
        return max(steps, default=-1)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        if not is_cohort_host(trial):  # a host's slot-trials get runs as they report
            self._trial_run(trial)

    def on_step_end(self, iteration, trials, **info) -> None:
        self.outbox.flush()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if is_cohort_host(trial):
            for entry in result.get(COHORT_REPORTS, []):
                state = self._run(entry["trial_id"], entry["trial_id"], entry["config"],
                                  {TAG_OPTUNA_TRIAL: str(entry["number"])})
                state.host = trial.trial_id
                self._log_report(state, entry["trial_id"], entry, {})
            return
        state = self._trial_run(trial)
        # PBT changes a running trial's hyperparameters; MLflow params are immutable, so the
        # changed values become curves of their own.
        perturbed = {f"pbt.{key}": float(value) for key, value in trial.config.items()
                     if key in state.params and str(value) != state.params[key] and isinstance(value, (int, float))}
        self._log_report(state, trial.trial_id, result, perturbed)

    def _log_report(self, state: _TrialRun, trial_id: str, result: Mapping[str, Any], extra: dict[str, float]) -> None:
        from mlflow.entities import Metric, RunTag

        step = int(result.get("step", result.get("training_iteration", 0)))
        now = int(time.time() * 1000)
        values = report_metrics(result, self.curves)
        if result.get("diverged"):
            values.pop(self.metric, None)  # the search's penalty, not a measurement
        values.update(extra)
        tags = []
        if not state.tagged:
            node = result.get("node_ip") or result.get("hostname")
            tags = [RunTag("node", str(node))] if node else []
            if result.get("evaluator_hash"):
                tags.append(RunTag(TAG_EVALUATOR, str(result["evaluator_hash"])))
            state.tagged = True
        metrics = [Metric(key, value, now, step) for key, value in values.items()]
        self.outbox.put(f"step {step} of trial {trial_id}",
                        lambda: self._log_metrics(state, step, metrics, tags))
        value = values.get(self.metric)
        if value is not None and not result.get("diverged") and is_better(value, state.best_value, self.mode):
            state.pending_best = (value, step)

    def _log_metrics(self, state: _TrialRun, step: int, metrics: list, tags: list) -> None:
        if step <= state.logged_through:
            metrics = []  # a step a resumed trial replays: its points are in the run already
        if metrics or tags:
            self.client.log_batch(state.run_id, metrics=metrics, tags=tags)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        """Log the sample grid of the report this checkpoint belongs to, and the checkpoint if best;
        for a cohort host, each reporting slot-trial's, whose run ends here if its trial did."""
        last = trial.last_result or {}
        with checkpoint.as_directory() as folder:
            if not is_cohort_host(trial):
                self._log_files(self._trial_run(trial), trial.trial_id, Path(folder), int(last.get("step", 0)))
                return
            for entry in last.get(COHORT_REPORTS, []):
                state = self.trials[entry["trial_id"]]
                self._log_files(state, entry["trial_id"], Path(folder) / SLOTS_FOLDER / entry["trial_id"], entry["step"])
                if entry["end"]:
                    self.outbox.put(f"the end of trial {entry['trial_id']}",
                                    lambda state=state, end=entry["end"]: close_run(self.client, state.run_id, end))
                    state.ended = True

    def _log_files(self, state: _TrialRun, trial_id: str, folder: Path, step: int) -> None:
        samples = folder / SAMPLES_FILE
        if samples.is_file():
            picture = self.outbox.keep_copy(samples, SAMPLES_FILE)
            self.outbox.put(f"the samples of step {step} of trial {trial_id}",
                            lambda: self._log_samples(state, picture, step))
        if state.pending_best is not None and state.pending_best[1] == step:
            value, _ = state.pending_best
            state.best_value, state.pending_best = value, None
            weights = self.outbox.keep_copy(folder / CHECKPOINT_FILE, CHECKPOINT_FILE)
            self.outbox.put(f"the best checkpoint of trial {trial_id}", lambda: self._log_best(state, weights, value, step))

    def _log_samples(self, state: _TrialRun, picture: Path, step: int) -> None:
        """The sample grid twice: as an MLflow image at its step, which the run page shows per step,
        and as ``samples/step_NNNNNNN.png``, a name ``gantune report`` reads without depending on how
        MLflow names its image files."""
        from PIL import Image

        if step <= state.logged_through:
            shutil.rmtree(picture.parent, ignore_errors=True)
            return
        with Image.open(picture) as image:
            self.client.log_image(state.run_id, image.copy(), key=SAMPLES_IMAGE_KEY, step=step, synchronous=True)
        named = picture.with_name(f"step_{step:07d}.png")
        picture.rename(named)
        self.client.log_artifact(state.run_id, str(named), SAMPLES_ARTIFACTS)
        shutil.rmtree(picture.parent, ignore_errors=True)

    def _log_best(self, state: _TrialRun, weights: Path, value: float, step: int) -> None:
        from mlflow.entities import RunTag

        self.client.log_artifact(state.run_id, str(weights), CHECKPOINT_ARTIFACTS)
        self.client.log_batch(state.run_id, tags=[RunTag(TAG_BEST_VALUE, repr(value)), RunTag(TAG_BEST_STEP, str(step))])
        shutil.rmtree(weights.parent, ignore_errors=True)

    # ------------------------------------------------------------------------ endings
    def _end_trial(self, trial, errored: bool) -> None:
        if is_cohort_host(trial):
            # Its ended slot-trials' runs are closed; a host that failed for good leaves the rest errored.
            if errored:
                for trial_id, state in self.trials.items():
                    if state.host == trial.trial_id and not state.ended:
                        state.ended = True
                        self.outbox.put(f"the end of trial {trial_id}",
                                        lambda state=state: close_run(self.client, state.run_id, "errored"))
            return
        state = self._trial_run(trial)
        status = end_status(trial.last_result or {}, errored)
        self.outbox.put(f"the end of trial {trial.trial_id}", lambda: close_run(self.client, state.run_id, status))

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._end_trial(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._end_trial(trial, errored=True)

    def on_experiment_end(self, trials, **info) -> None:
        """End every run left open; then, unless a signal stopped the search, write the summary and
        log the best trial's generator."""
        if not self.outbox.drain():
            return  # the server is gone: its runs stay open until a --resume or a rerun finds it back
        open_runs = self._children("attributes.status = 'RUNNING'")
        signum = stopped_by()
        if signum is not None:
            end_interrupted(self.client, self.parent_id, open_runs, self.resume_command, signal.Signals(signum).name)
            return
        close_leftovers(self.client, open_runs, trials, host_of=self._host_of,
                        settled=lambda: settled_slot_trials(self.search_name, self.study_url, self.mode))
        best = summarise_search(self.client, self.parent_id, self._children(), self.metric, self.mode)
        if best is not None:
            self._log_best_model(best)
        self.client.set_terminated(self.parent_id, status="FINISHED")

    def _host_of(self, trial_id: str) -> str | None:
        """The cohort host a slot-trial ran in; None for a trial of its own (or one unknown here)."""
        state = self.trials.get(trial_id)
        return state.host if state is not None else None

    def _log_best_model(self, best) -> None:
        """The best generator as a model, which a failure must not cost the search its end (the
        parent run's end, ``best.json``): it is reported in one line instead."""
        try:
            with announced("logging the best generator as a model"):
                log_best_model(self.client, best, self.search_name)
        except Exception as failure:
            print(f"gantune search: the best generator was not logged as a model ({type(failure).__name__}: "
                  f"{failure}); its checkpoint is logged under {CHECKPOINT_ARTIFACTS}/ of run {best.info.run_id}",
                  flush=True)
