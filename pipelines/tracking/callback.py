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

import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import yaml
from ray import tune
from ray.tune.result import AUTO_RESULT_KEYS

from pipelines.search.folder import SearchFolder
from pipelines.search.outcome import RUN_STATUS, trial_status
from pipelines.tracking.summary import log_best_model, summarise_search
from pipelines.tracking.tags import (
    CHECKPOINT_ARTIFACTS, PARENT_RUN_FILE, SAMPLES_ARTIFACTS, TAG_BEST_STEP, TAG_BEST_VALUE, TAG_DATASET, TAG_EVALUATOR,
    TAG_METRIC, TAG_MODE, TAG_PARENT, TAG_ROLE, TAG_SEARCH, TAG_STATUS, TAG_TRIAL_ID,
)
from pipelines.tracking.target import TrackingTarget
from trainables.checkpoint import CHECKPOINT_FILE, SAMPLES_FILE
from trainables.objectives import is_better

TRIAL_TAG_KEYS = ("loss", "arch", "conditional", "dataset")
NOT_METRICS = set(AUTO_RESULT_KEYS) | {"step", "trial_id", "done", "should_checkpoint"}

# The MLflow UI opens an experiment without this tag on its GenAI traces view, empty for GANs;
# this value opens the model-training view (runs table and metric charts).
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def report_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a report worth a curve: finite, not flags, not Tune's bookkeeping."""
    return {
        key: float(value)
        for key, value in result.items()
        if key not in NOT_METRICS
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    }


def flat_params(prefix: str, value: Any) -> dict[str, str]:
    """Nested settings as dotted MLflow params."""
    if isinstance(value, Mapping):
        flat: dict[str, str] = {}
        for key, inner in value.items():
            flat.update(flat_params(f"{prefix}.{key}" if prefix else str(key), inner))
        return flat
    return {prefix: json.dumps(value) if isinstance(value, (list, tuple)) else str(value)}


class _TrialRun:
    """What the callback remembers about one trial's child run."""

    def __init__(self, run_id: str, params: dict[str, str], best_value: float | None):
        self.run_id = run_id
        self.params = params
        self.best_value = best_value
        self.pending_best: tuple[float, int] | None = None
        self.tagged = False


class MlflowTracking(tune.Callback):
    """Logs the search in ``folder`` (``settings``: its resolved preset) into ``target``."""

    def __init__(self, target: TrackingTarget, folder: SearchFolder, settings: Mapping[str, Any]):
        self.target = target
        self.folder = folder
        self.search_name = folder.name
        self.settings = dict(settings)
        self.metric = settings["metric"]
        self.mode = settings["mode"]
        self.client = None
        self.experiment_id: str | None = None
        self.parent_id: str | None = None
        self.trials: dict[str, _TrialRun] = {}

    # ---------------------------------------------------------------------- the parent run
    def setup(self, **info) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(self.target.uri)
        self.experiment_id = self._experiment()
        self.parent_id = self._resumed_parent() or self._new_parent()

    def _experiment(self) -> str:
        found = self.client.get_experiment_by_name(self.target.experiment)
        if found is not None:
            return found.experiment_id
        return self.client.create_experiment(self.target.experiment, artifact_location=self.target.artifact_location,
                                             tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})

    def _resumed_parent(self) -> str | None:
        """The parent run of an interrupted search, running again; None for a new search."""
        try:
            record = json.loads(self.folder.read_text(PARENT_RUN_FILE))
        except OSError:  # no record yet: a new search
            return None
        run_id = record["parent_run_id"]
        self.client.update_run(run_id, status="RUNNING")
        return run_id

    def _new_parent(self) -> str:
        tags = {
            TAG_ROLE: "search",
            TAG_SEARCH: self.search_name,
            TAG_METRIC: self.metric,
            TAG_MODE: self.mode,
            TAG_DATASET: str(self.settings.get("dataset")),
            "mlflow.runName": self.search_name,
        }
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=self.search_name)
        run_id = run.info.run_id
        from mlflow.entities import Param

        params = flat_params("", {key: value for key, value in self.settings.items() if key != "params"})
        params.update(flat_params("space", self.settings.get("params", {})))
        self.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
        self.client.log_text(run_id, yaml.safe_dump(self.settings, sort_keys=False), "search.yaml")
        self.folder.write_text(PARENT_RUN_FILE, json.dumps({"parent_run_id": run_id, "tracking_uri": self.target.uri}))
        return run_id

    # ----------------------------------------------------------------------- child runs
    def _children(self, extra_filter: str = "") -> list:
        query = f"tags.`{TAG_PARENT}` = '{self.parent_id}'" + (f" and {extra_filter}" if extra_filter else "")
        return self.client.search_runs([self.experiment_id], query, max_results=5000)

    def _trial_run(self, trial) -> _TrialRun:
        """The trial's child run: remembered, found again by its Ray trial id, or created."""
        if trial.trial_id in self.trials:
            return self.trials[trial.trial_id]
        found = self._children(f"tags.`{TAG_TRIAL_ID}` = '{trial.trial_id}'")
        if found:
            run = found[0]
            self.client.update_run(run.info.run_id, status="RUNNING")
            best = run.data.tags.get(TAG_BEST_VALUE)
            state = _TrialRun(run.info.run_id, dict(run.data.params), float(best) if best else None)
        else:
            state = self._new_child(trial)
        self.trials[trial.trial_id] = state
        return state

    def _new_child(self, trial) -> _TrialRun:
        from mlflow.entities import Param

        config = {key: value for key, value in trial.config.items() if value is not None}
        tags = {
            TAG_PARENT: self.parent_id,
            TAG_ROLE: "trial",
            TAG_SEARCH: self.search_name,
            TAG_TRIAL_ID: trial.trial_id,
            TAG_METRIC: self.metric,
            TAG_MODE: self.mode,
            TAG_STATUS: "running",
            **{key: str(config[key]) for key in TRIAL_TAG_KEYS if key in config},
        }
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=str(trial))
        params = {key: str(value) for key, value in config.items()}
        self.client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
        return _TrialRun(run.info.run_id, params, None)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._trial_run(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        from mlflow.entities import Metric, RunTag

        state = self._trial_run(trial)
        step = int(result.get("step", result.get("training_iteration", 0)))
        now = int(time.time() * 1000)
        values = report_metrics(result)
        if result.get("diverged"):
            values.pop(self.metric, None)  # the search's penalty, not a measurement
        # PBT changes a running trial's hyperparameters; MLflow params are immutable, so the
        # changed values become curves of their own.
        values.update(
            {f"pbt.{key}": float(value) for key, value in trial.config.items()
             if key in state.params and str(value) != state.params[key] and isinstance(value, (int, float))}
        )
        tags = []
        if not state.tagged:
            node = result.get("node_ip") or result.get("hostname")
            tags = [RunTag("node", str(node))] if node else []
            if result.get("evaluator_hash"):
                tags.append(RunTag(TAG_EVALUATOR, str(result["evaluator_hash"])))
            state.tagged = True
        metrics = [Metric(key, value, now, step) for key, value in values.items()]
        self.client.log_batch(state.run_id, metrics=metrics, tags=tags)
        value = values.get(self.metric)
        if value is not None and not result.get("diverged") and is_better(value, state.best_value, self.mode):
            state.pending_best = (value, step)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        """Log the sample grid of the report this checkpoint belongs to, and the checkpoint if best."""
        state = self._trial_run(trial)
        step = int((trial.last_result or {}).get("step", 0))
        with checkpoint.as_directory() as folder, tempfile.TemporaryDirectory() as scratch:
            samples = Path(folder) / SAMPLES_FILE
            if samples.is_file():
                named = Path(scratch) / f"step_{step:07d}.png"
                shutil.copyfile(samples, named)
                self.client.log_artifact(state.run_id, str(named), SAMPLES_ARTIFACTS)
            if state.pending_best is not None and state.pending_best[1] == step:
                self.client.log_artifact(state.run_id, str(Path(folder) / CHECKPOINT_FILE), CHECKPOINT_ARTIFACTS)
                value, _ = state.pending_best
                self.client.set_tag(state.run_id, TAG_BEST_VALUE, repr(value))
                self.client.set_tag(state.run_id, TAG_BEST_STEP, str(step))
                state.best_value, state.pending_best = value, None

    # ------------------------------------------------------------------------ endings
    def _end_trial(self, trial, errored: bool) -> None:
        state = self._trial_run(trial)
        status = trial_status(trial.last_result or {}, errored)
        self.client.set_tag(state.run_id, TAG_STATUS, status)
        self.client.set_terminated(state.run_id, status=RUN_STATUS[status])

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._end_trial(trial, errored=False)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._end_trial(trial, errored=True)

    def on_experiment_end(self, trials, **info) -> None:
        """End every run left open, write the summary, and log the best trial's generator."""
        # A trial the search's time budget stopped is TERMINATED without an on_trial_complete; it
        # ended early like an ASHA-stopped one. Runs of no trial this driver knows are leftovers.
        by_id = {trial.trial_id: trial for trial in trials}
        for run in self._children("attributes.status = 'RUNNING'"):
            trial = by_id.get(run.data.tags.get(TAG_TRIAL_ID))
            if trial is not None:
                self._end_trial(trial, errored=trial.status == "ERROR")
                continue
            self.client.set_tag(run.info.run_id, TAG_STATUS, "errored")
            self.client.set_terminated(run.info.run_id, status="KILLED")
        best = summarise_search(self.client, self.parent_id, self._children(), self.metric, self.mode)
        if best is not None:
            log_best_model(self.client, best, self.search_name)
        self.client.set_terminated(self.parent_id, status="FINISHED")
