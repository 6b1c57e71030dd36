"""Run a validated search on Ray Tune: the tuner, its callbacks, Ray start-up and ``best.json``.

``run_search`` is the Python entry point; ``gantune search`` validates its flags and calls it.
Everything that can be wrong with the input has been checked before this module starts Ray.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pipelines.search.algorithms import build_scheduler, build_searcher
from pipelines.search.folder import SearchFolder
from pipelines.search.stop_signals import StopSignals
from pipelines.timed_step import announced
from pipelines.tracking.target import TrackingTarget
from search_spaces.preset_types import SearchPreset

# Snapshot the experiment state every second (Tune's default is 10 s or more): a driver killed
# between snapshots reruns every trial that finished since the last one.
EXPERIMENT_SNAPSHOT_S = "1"
# Kept per trial: the best checkpoints by the search metric (Tune always keeps the latest, too).
# Three, not two: PBT may clone a checkpoint that a two-deep history has already deleted.
CHECKPOINTS_KEPT = 3
TRIAL_RETRIES = 2
ENV_FOR_TRIALS = ("GANTUNE_DATA_ROOT", "GANTUNE_CACHE_DIR")
# A reused actor waits for the previous trial's thread to end, and a stopped trial's thread ends
# only at its next report, up to one evaluation interval later; Tune's default wait (2 s) then
# fails the next trial instead of waiting.
TRIAL_THREAD_EXIT_S = "600"
NO_AUTO_LOGGERS = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"


class RayStartError(RuntimeError):
    """Ray could not be started or joined: nothing of the search ran, and it can simply be rerun."""


class SearchInterrupted(Exception):
    """A signal stopped the search; ``resume`` is the command that continues it ("" if nothing started)."""

    def __init__(self, signals: StopSignals, resume: str):
        super().__init__(signals.name)
        self.exit_code = signals.exit_code
        self.resume = resume


@dataclass(frozen=True)
class SearchRun:
    """A search ready to start: what to search, where to keep it, and where to run it."""

    preset: SearchPreset
    folder: SearchFolder
    study_url: str
    address: str | None = None  # None: start an embedded Ray on this machine
    resume: bool = False
    reuse_actors: bool = True  # a new trial takes over a finished trial's process (no start-up)
    extra_callbacks: tuple = ()  # further tune.Callback objects, e.g. a benchmark's timer
    tracking: TrackingTarget | None = None  # None: no MLflow runs
    resume_command: str = ""  # the command line that continues this search after an interruption
    gpus_typed: bool = False  # --gpus-per-trial was given (a preset's GPU request may fall back to the CPU)


def trial_env() -> dict[str, str]:
    """Environment the trials need from the driver, with local paths made absolute. The driver's
    working folder joins the trials' import path, as it is on the driver's: a user's own nets
    (``arch: module:function``) import in the trials as they did in the driver."""
    env = {"TUNE_FUNCTION_THREAD_TIMEOUT_S": TRIAL_THREAD_EXIT_S}
    for key in ENV_FOR_TRIALS:
        if os.environ.get(key):
            value = os.environ[key]
            env[key] = value if "://" in value else str(Path(value).expanduser().resolve())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), os.getcwd()]))
    return env


def search_callbacks(run: SearchRun) -> list:
    """Every driver-side Tune callback of a search, in one place."""
    from pipelines.search.progress import SearchProgress
    from pipelines.search.resources import ResourceWait

    preset = run.preset
    callbacks = [SearchProgress(preset.metric, preset.mode, total=preset.budget.num_samples), ResourceWait(preset),
                 *run.extra_callbacks]
    if run.tracking is not None:
        from pipelines.tracking.callback import MlflowTracking

        callbacks.append(MlflowTracking(run.tracking, run.folder, preset.to_dict(), run.resume_command,
                                        run.study_url))
    if preset.budget.cohort > 1:
        from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

        # Tune's automatic loggers are off for a cohort search (see tune_loggers): these two are kept.
        callbacks += [JsonLoggerCallback(), CSVLoggerCallback()]
    return callbacks


@contextmanager
def tune_loggers(preset: SearchPreset) -> Iterator[None]:
    """A cohort host's report holds a list (its slot-trials' reports), which Tune's TensorBoard logger
    cannot write and warns about at every report: a cohort search runs without Tune's automatic
    loggers, and ``search_callbacks`` adds back the JSON and CSV ones."""
    if preset.budget.cohort == 1:
        yield
        return
    before = os.environ.get(NO_AUTO_LOGGERS)
    os.environ[NO_AUTO_LOGGERS] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[NO_AUTO_LOGGERS]
        else:
            os.environ[NO_AUTO_LOGGERS] = before


def build_trainable(run: SearchRun):
    """One trial per Tune trial, or (``budget.cohort`` > 1) a cohort host per Tune trial."""
    from ray import tune

    preset = run.preset
    resources = {"cpu": preset.resources.cpus_per_trial, "gpu": preset.resources.gpus_per_trial}
    if preset.budget.cohort > 1:
        from pipelines.search.trials.cohort_host import host_cohort
        from pipelines.search.trials.cohort_plan import CohortPlan, hosts_for

        plan = CohortPlan(preset, run.folder.name, run.study_url, hosts_for(preset.budget))
        trainable = tune.with_parameters(host_cohort, plan=plan, cpus=preset.resources.cpus_per_trial)
    else:
        from pipelines.search.trials.single import train_gan

        trainable = tune.with_parameters(train_gan, metric=preset.metric, mode=preset.mode,
                                         cpus=preset.resources.cpus_per_trial)
    return tune.with_resources(trainable, resources)


def cohort_hosts(run: SearchRun) -> dict[str, Any]:
    """The hosts' param space, one grid point each; the study is made here, since the hosts only load it."""
    import optuna
    from ray import tune

    from pipelines.search.trials.cohort_plan import COHORT_HOST_KEY, hosts_for

    preset = run.preset
    optuna.create_study(study_name=run.folder.name, storage=optuna.storages.RDBStorage(run.study_url),
                        direction="minimize" if preset.mode == "min" else "maximize", load_if_exists=True)
    return {COHORT_HOST_KEY: tune.grid_search(list(range(hosts_for(preset.budget))))}


def build_tuner(run: SearchRun):
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    preset = run.preset
    trainable = build_trainable(run)
    if run.resume:
        # A restored Tuner runs with the callbacks it was first built with (pickled in its folder).
        return tune.Tuner.restore(run.folder.experiment, trainable, resume_unfinished=True, resume_errored=True)
    if preset.budget.cohort > 1:
        # Slot-trials are sampled and pruned inside the hosts; Tune only runs the hosts.
        param_space = cohort_hosts(run)
        searcher, scheduler, samples = None, FIFOScheduler(), 1
    else:
        searcher, param_space = build_searcher(preset, run.folder.name, run.study_url)
        scheduler, samples = build_scheduler(preset), preset.budget.num_samples
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric=preset.metric,
            mode=preset.mode,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=samples,
            # PBT's population runs side by side; a concurrency cap only applies to a searcher.
            max_concurrent_trials=None if preset.scheduler.name == "pbt" else preset.budget.max_concurrent,
            time_budget_s=preset.budget.time_budget,
            reuse_actors=run.reuse_actors,
        ),
        run_config=tune.RunConfig(
            name=Path(run.folder.experiment).name,
            storage_path=run.folder.path,
            callbacks=search_callbacks(run),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=CHECKPOINTS_KEPT,
                checkpoint_score_attribute=preset.metric,
                checkpoint_score_order=preset.mode,
            ),
            failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES),
            verbose=0,
        ),
    )


def prepare_evaluator(preset: SearchPreset) -> None:
    """Build the image evaluator once on the driver, so concurrent trials find it cached."""
    from trainables.data.datasets import DATASETS, load_data

    if not DATASETS[preset.dataset].is_image:
        return
    import torch

    from trainables.quality.evaluator_cache import load_or_train_evaluator

    config = preset.data_config()
    if config.evaluator:
        from trainables.data.datasets import spec_of
        from trainables.quality.user_evaluator import load_user_features

        _, evaluator_hash = load_user_features(config.evaluator, spec_of(config).shape, torch.device("cpu"))
        print(f"evaluator {evaluator_hash[:12]} ({config.evaluator})", flush=True)
        return
    if not DATASETS[preset.dataset].from_files and config.data_root is None:
        config = dataclasses.replace(config, data_root=os.environ.get("GANTUNE_DATA_ROOT"))
    with announced(f"loading the {preset.dataset} evaluator (trained and cached on first use)"):
        evaluator = load_or_train_evaluator(load_data(config), torch.device("cpu"))
    print(f"evaluator {evaluator.evaluator_hash[:12]}", flush=True)


def start_ray(address: str | None, folder: SearchFolder) -> None:
    import ray

    # "local" starts a fresh Ray here even when a `ray start` cluster runs on this host, which a
    # bare ray.init() would join.
    embedded = {"include_dashboard": False} if address is None else {}
    try:
        with announced("starting Ray on this machine" if address is None else f"joining the Ray cluster at {address}"):
            ray.init(address=address or "local", runtime_env={"env_vars": trial_env()}, log_to_driver=False,
                     **embedded)
    except Exception as err:  # Ray raises a bare Exception when its node does not come up
        if any("InvalidAuthToken" in str(link) for link in (err, err.__cause__, err.__context__) if link is not None):
            raise RayStartError(f"the Ray cluster at {address} refused this driver's token; export RAY_AUTH_MODE=token "
                                "and RAY_AUTH_TOKEN_PATH (or RAY_AUTH_TOKEN) holding the cluster's token") from err
        raise RayStartError(f"Ray did not start ({str(err).splitlines()[0]}); the search can be rerun with "
                            f"--name {folder.name}") from err


def run_search(run: SearchRun) -> dict[str, Any] | None:
    """Run (or resume) a search to its end; returns the ``best.json`` record, also written to the folder.

    Raises ``SearchInterrupted`` when SIGINT or SIGTERM stopped it, after every run was ended.
    """
    import ray

    from pipelines.search.progress import best_record, trial_table
    from pipelines.search.resources import fit_to_nodes, live_nodes, this_machine

    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", EXPERIMENT_SNAPSHOT_S)
    signals = StopSignals()
    embedded = run.address is None
    # This machine is known before Ray starts; a cluster's nodes only once joined.
    if embedded:
        run = dataclasses.replace(run, preset=fit_to_nodes(run.preset, [this_machine()], True, run.gpus_typed))
    start_ray(run.address, run.folder)
    try:
        with signals.caught():
            if not embedded:
                run = dataclasses.replace(run, preset=fit_to_nodes(run.preset, live_nodes(), False, run.gpus_typed))
            preset = run.preset
            if not run.resume:
                run.folder.write_search(preset.to_dict())
            try:
                prepare_evaluator(preset)
                with tune_loggers(preset):
                    results = build_tuner(run).fit()
            except KeyboardInterrupt:
                signals.stop(signal.SIGINT)
                results = None
    finally:
        ray.shutdown()
    if signals.received:
        raise SearchInterrupted(signals, run.resume_command if run.folder.exists() else "")
    print(trial_table(results, preset.metric, preset.mode))
    best = best_record(results, preset.metric, preset.mode)
    if best is not None:
        location = run.folder.write_best(best)
        print(f"best {preset.metric} {best['value']:.4g} (trial {best['trial_id']}); written to {location}")
    if run.tracking is not None:
        from pipelines.report.build import report_after_search

        report_after_search(run.tracking, run.folder)
    return best
