"""Promotion policy: register a search's best generator and move the alias only if it is better.

The candidate is the best trial of the experiment's latest search (or of ``--search RUN_ID``) on
the metric that search optimised, recorded on its parent run, so image and 2-D searches promote
alike. Each promotion registers a model version carrying its lineage; the alias moves only when
the candidate strictly beats the current holder on the same metric measured by the same
evaluator (compared by the evaluator's hash), since scores from different evaluators do not
compare. Otherwise the champion stays and the command says why.

Beating the holder is not enough on a first promotion, where there is none: the search's preset
states a floor (e.g. grid25: at least 20 of 25 modes), recorded as the parent run's ``floor.*``
params, and a candidate below it is refused unless ``--force``, so a search that found nothing
good never ships its least bad generator as the champion.
"""

from __future__ import annotations

import tempfile

from pipelines.tracking.lookup import find_search
from pipelines.tracking.tags import (
    TAG_BEST_STEP,
    TAG_DATASET,
    TAG_METRIC,
    TAG_MODE,
    TAG_MODEL,
    TAG_PARENT,
    TAG_TRIAL_ID,
    lineage_tags,
)
from trainables.data.datasets import DATASETS
from trainables.errors import UsageError
from trainables.quality.objectives import best_of, is_better

FLOOR_PARAM_PREFIX = "floor."
VERSION_TAG_METRIC = "metric"
VERSION_TAG_VALUE = "metric_value"
VERSION_TAG_EVALUATOR = "evaluator_hash"


def metric_directions(search) -> dict[str, str]:
    """Each metric the search's dataset reports -> its better direction (min or max)."""
    dataset = search.data.tags.get(TAG_DATASET)
    if dataset not in DATASETS:
        raise UsageError(f"promote: search {search.info.run_id} records no known dataset (tag {TAG_DATASET})")
    return dict(DATASETS[dataset].metrics)


def metric_mode(metric: str, search) -> str:
    """min or max: the search's own mode for its metric, else the direction the metric is known to go."""
    if search.data.tags.get(TAG_METRIC) == metric:
        return search.data.tags[TAG_MODE]
    directions = metric_directions(search)
    if metric not in directions:
        raise UsageError(f"--metric {metric!r} is not a quality metric of {search.data.tags.get(TAG_DATASET)}; "
                         f"choose one of {', '.join(directions)}")
    return directions[metric]


def _value_at_best_step(client, run, metric: str) -> float | None:
    """The metric where the trial's logged (best) checkpoint was taken."""
    step = int(run.data.tags[TAG_BEST_STEP])
    values = [m.value for m in client.get_metric_history(run.info.run_id, metric) if m.step == step]
    return values[-1] if values else None


def best_trial(client, search, metric: str, mode: str):
    """The search's trial with a logged checkpoint that scores best on ``metric``; (run, value)."""
    children = client.search_runs(
        [search.info.experiment_id], f"tags.`{TAG_PARENT}` = '{search.info.run_id}'", max_results=5000
    )
    scored = [(run, _value_at_best_step(client, run, metric)) for run in children if TAG_BEST_STEP in run.data.tags]
    scored = [(run, value) for run, value in scored if value is not None]
    if not scored:
        raise UsageError(f"promote: no trial of search {search.info.run_name!r} logged a checkpoint with {metric!r}")
    return best_of(scored, mode, lambda pair: pair[1])


def floor_failures(client, search, trial) -> list[str]:
    """Each ``floor.<metric>`` bound of the search that the trial's best checkpoint misses, as text."""
    directions = metric_directions(search)
    failures = []
    for key, bound in search.data.params.items():
        metric = key.removeprefix(FLOOR_PARAM_PREFIX)
        if not key.startswith(FLOOR_PARAM_PREFIX) or metric not in directions:
            continue
        value = _value_at_best_step(client, trial, metric)
        if value is None or is_better(float(bound), value, directions[metric]):
            shown = "none logged" if value is None else f"{value:.4g}"
            failures.append(f"{metric} {shown} (floor {float(bound):g})")
    return failures


def _ensure_model(client, run) -> str:
    """The trial's pyfunc model URI, logging the model from its checkpoint when the search did not."""
    from pipelines.registry.model_source import record_from_run
    from pipelines.registry.pyfunc_model import MODEL_ARTIFACT_PATH, log_generator_model

    if TAG_MODEL not in run.data.tags:
        with tempfile.TemporaryDirectory() as scratch:
            log_generator_model(client, run.info.run_id, record_from_run(client, run.info.run_id, scratch))
        client.set_tag(run.info.run_id, TAG_MODEL, MODEL_ARTIFACT_PATH)
    return f"runs:/{run.info.run_id}/{MODEL_ARTIFACT_PATH}"


def _version_for(client, name: str, run, source: str, tags: dict[str, str]):
    """The version registered from this run, created once: promoting again does not duplicate it."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    for version in client.search_model_versions(f"name = '{name}' and run_id = '{run.info.run_id}'"):
        if version.tags.get(VERSION_TAG_METRIC) == tags[VERSION_TAG_METRIC]:
            return version
    return client.create_model_version(name, source, run_id=run.info.run_id, tags=tags)


def _champion(client, name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def decide(candidate_value: float, candidate_evaluator: str, metric: str, mode: str, champion_tags: dict | None):
    """(move, reason): move only when the champion is absent, or comparable and strictly worse."""
    if champion_tags is None:
        return True, "no current holder"
    if champion_tags.get(VERSION_TAG_METRIC) != metric:
        return False, f"the holder was chosen on {champion_tags.get(VERSION_TAG_METRIC)!r}, not {metric!r}"
    if champion_tags.get(VERSION_TAG_EVALUATOR) != candidate_evaluator:
        return False, "the holder was scored by a different evaluator (hash differs)"
    held = float(champion_tags[VERSION_TAG_VALUE])
    if is_better(candidate_value, held, mode):
        return True, f"{metric} {candidate_value:.6g} beats {held:.6g}"
    return False, f"{metric} {candidate_value:.6g} does not beat the holder's {held:.6g}"


def promote(client, experiment: str, search_id: str | None, metric: str | None, model_name: str | None, alias: str,
            force: bool) -> str:
    """Register the best trial of the search (``search_id``, else the experiment's latest) on ``metric``
    (default: the search's own) and move ``alias`` to it if it is better; returns what was done, as a line."""
    search = find_search(client, experiment, search_id)
    metric = metric or search.data.tags.get(TAG_METRIC)
    if not metric:
        raise UsageError(f"promote: run {search.info.run_id} records no search metric; give --metric")
    mode = metric_mode(metric, search)
    trial, value = best_trial(client, search, metric, mode)
    failures = floor_failures(client, search, trial)
    if failures and not force:
        raise UsageError(f"the best trial {trial.data.tags.get(TAG_TRIAL_ID, trial.info.run_id)} is below the preset's "
                          f"floor: {'; '.join(failures)}; search longer or wider, or pass --force to register it anyway")
    name = model_name or f"gantune-{search.data.tags.get(TAG_DATASET, 'generator')}"
    lineage = lineage_tags(trial)
    tags = {**lineage, VERSION_TAG_METRIC: metric, VERSION_TAG_VALUE: repr(value), "mode": mode}
    version = _version_for(client, name, trial, _ensure_model(client, trial), tags)
    champion = _champion(client, name, alias)
    move, reason = decide(value, tags[VERSION_TAG_EVALUATOR], metric, mode, None if champion is None else champion.tags)
    if champion is not None and champion.version == version.version:
        move, reason = False, "it already holds the alias"
    if move:
        client.set_registered_model_alias(name, alias, version.version)
        return f"promoted {name} version {version.version} to @{alias}: {reason}"
    holder = "nobody" if champion is None else f"version {champion.version}"
    return f"registered {name} version {version.version}; @{alias} stays on {holder}: {reason}"
