"""``gantune promote``: register a search's best generator and move the alias only if it is better.

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

from trainables.config import ConfigError

DEFAULT_ALIAS = "champion"
FLOOR_PARAM_PREFIX = "floor."
VERSION_TAG_METRIC = "metric"
VERSION_TAG_VALUE = "metric_value"
VERSION_TAG_EVALUATOR = "evaluator_hash"


def register(subparsers) -> None:
    parser = subparsers.add_parser("promote", help="register a search's best generator; move the alias if it is better")
    parser.add_argument("--experiment", required=True, metavar="NAME", help="MLflow experiment of the search")
    parser.add_argument("--metric", help="metric to compare on (default: the one the search optimised)")
    parser.add_argument("--model-name", metavar="NAME", help="registered model (default: gantune-<dataset>)")
    parser.add_argument("--alias", default=DEFAULT_ALIAS, help=f"alias to move (default {DEFAULT_ALIAS})")
    parser.add_argument("--search", metavar="RUN_ID", help="parent run of the search (default: the latest one)")
    parser.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    parser.add_argument("--force", action="store_true", help="register even a generator below the preset's floor")
    parser.set_defaults(func=run)


def _search_run(client, experiment_id: str, run_id: str | None):
    from pipelines.registry.model_source import mlflow_failure
    from pipelines.tracking.tags import TAG_ROLE

    if run_id:
        try:
            return client.get_run(run_id)
        except Exception as err:
            raise mlflow_failure(f"--search {run_id}", err) from None
    found = client.search_runs([experiment_id], f"tags.`{TAG_ROLE}` = 'search'", order_by=["attributes.start_time DESC"],
                               max_results=1)
    if not found:
        raise ConfigError("promote: the experiment holds no search; run `gantune search` with this --experiment first")
    return found[0]


def metric_mode(metric: str, search) -> str:
    """min or max: the search's own mode for its metric, else the direction the metric is known to go."""
    from pipelines.tracking.tags import TAG_METRIC, TAG_MODE
    from trainables.objectives import METRIC_DIRECTIONS

    if search.data.tags.get(TAG_METRIC) == metric:
        return search.data.tags[TAG_MODE]
    if metric not in METRIC_DIRECTIONS:
        raise ConfigError(f"--metric {metric!r} is not a quality metric; choose one of {', '.join(METRIC_DIRECTIONS)}")
    return METRIC_DIRECTIONS[metric]


def _value_at_best_step(client, run, metric: str) -> float | None:
    """The metric where the trial's logged (best) checkpoint was taken."""
    from pipelines.tracking.tags import TAG_BEST_STEP

    step = int(run.data.tags[TAG_BEST_STEP])
    values = [m.value for m in client.get_metric_history(run.info.run_id, metric) if m.step == step]
    return values[-1] if values else None


def best_trial(client, search, metric: str, mode: str):
    """The search's trial with a logged checkpoint that scores best on ``metric``; (run, value)."""
    from pipelines.tracking.tags import TAG_BEST_STEP, TAG_PARENT

    children = client.search_runs(
        [search.info.experiment_id], f"tags.`{TAG_PARENT}` = '{search.info.run_id}'", max_results=5000
    )
    scored = [(run, _value_at_best_step(client, run, metric)) for run in children if TAG_BEST_STEP in run.data.tags]
    scored = [(run, value) for run, value in scored if value is not None]
    if not scored:
        raise ConfigError(f"promote: no trial of search {search.info.run_name!r} logged a checkpoint with {metric!r}")
    sign = 1 if mode == "min" else -1
    return min(scored, key=lambda pair: sign * pair[1])


def floor_failures(client, search, trial) -> list[str]:
    """Each ``floor.<metric>`` bound of the search that the trial's best checkpoint misses, as text."""
    from trainables.objectives import METRIC_DIRECTIONS, is_better

    failures = []
    for key, bound in search.data.params.items():
        metric = key.removeprefix(FLOOR_PARAM_PREFIX)
        if not key.startswith(FLOOR_PARAM_PREFIX) or metric not in METRIC_DIRECTIONS:
            continue
        value = _value_at_best_step(client, trial, metric)
        if value is None or is_better(float(bound), value, METRIC_DIRECTIONS[metric]):
            shown = "none logged" if value is None else f"{value:.4g}"
            failures.append(f"{metric} {shown} (floor {float(bound):g})")
    return failures


def _ensure_model(client, run) -> str:
    """The trial's pyfunc model URI, logging the model from its checkpoint when the search did not."""
    from pipelines.registry.model_source import record_from_run
    from pipelines.registry.pyfunc_model import MODEL_ARTIFACT_PATH, log_generator_model
    from pipelines.tracking.tags import TAG_MODEL

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
    better = candidate_value < held if mode == "min" else candidate_value > held
    if better:
        return True, f"{metric} {candidate_value:.6g} beats {held:.6g}"
    return False, f"{metric} {candidate_value:.6g} does not beat the holder's {held:.6g}"


def run(args) -> int:
    from pipelines.registry.model_source import mlflow_failure, tracking_client
    from pipelines.tracking.tags import TAG_DATASET, TAG_METRIC, TAG_TRIAL_ID, lineage_tags

    client = tracking_client(args.tracking_uri)
    try:
        experiment = client.get_experiment_by_name(args.experiment)
    except Exception as err:
        raise mlflow_failure("promote", err) from None
    if experiment is None:
        raise ConfigError(f"--experiment {args.experiment!r} does not exist at {client.tracking_uri}; check the name and --tracking-uri")
    search = _search_run(client, experiment.experiment_id, args.search)
    metric = args.metric or search.data.tags.get(TAG_METRIC)
    if not metric:
        raise ConfigError(f"promote: run {search.info.run_id} records no search metric; give --metric")
    mode = metric_mode(metric, search)
    trial, value = best_trial(client, search, metric, mode)
    failures = floor_failures(client, search, trial)
    if failures and not args.force:
        raise ConfigError(f"the best trial {trial.data.tags.get(TAG_TRIAL_ID, trial.info.run_id)} is below the preset's "
                          f"floor: {'; '.join(failures)}; search longer or wider, or pass --force to register it anyway")
    name = args.model_name or f"gantune-{search.data.tags.get(TAG_DATASET, 'generator')}"
    lineage = lineage_tags(trial)
    tags = {**lineage, VERSION_TAG_METRIC: metric, VERSION_TAG_VALUE: repr(value), "mode": mode}
    version = _version_for(client, name, trial, _ensure_model(client, trial), tags)
    champion = _champion(client, name, args.alias)
    move, reason = decide(value, tags[VERSION_TAG_EVALUATOR], metric, mode, None if champion is None else champion.tags)
    if champion is not None and champion.version == version.version:
        move, reason = False, "it already holds the alias"
    if move:
        client.set_registered_model_alias(name, args.alias, version.version)
        print(f"promoted {name} version {version.version} to @{args.alias}: {reason}")
    else:
        holder = "nobody" if champion is None else f"version {champion.version}"
        print(f"registered {name} version {version.version}; @{args.alias} stays on {holder}: {reason}")
    return 0
