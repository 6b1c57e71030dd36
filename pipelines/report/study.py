"""An in-memory Optuna study rebuilt from a search's trial records, and its parameter importances.

The report needs the store alone, not the search's own ``optuna.db`` (which may be gone, live
in another database, or not exist: a PBT search keeps none). Each trial with a value becomes a
complete trial holding that value and the params it logged; MLflow keeps params as text, so each
param's distribution is inferred from what was observed: ``True``/``False`` and other text are
categorical, numbers span the observed range, on a log scale when it covers more than two
decades. Only params that took at least two values count: a pinned key carries no information.
A PBT trial counts with the params it started with (its perturbations are logged as curves).

Importances come from Optuna's PED-ANOVA evaluator, which handles conditional params (``clip``
only for ``wgan``, ``gp_weight`` only for ``wgan-gp``, ...) by comparing trials within each
regime where the param is present, instead of dropping every param some trial lacks, as fANOVA
does. It measures how much each param matters for reaching the top ``target_quantile`` of
trials: the top 10 %, widened so that at least five trials are the top (the method's own
advice), but never past the better half.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

from pipelines.report.store import TrialRecord

LOG_SCALE_SPAN = 100.0  # more than two decades between the smallest and largest value
TOP_QUANTILE, TOP_TRIALS_WANTED, WIDEST_QUANTILE = 0.1, 5, 0.5


def typed_values(texts: Sequence[str]) -> list[Any]:
    """Logged param texts as bools, ints, floats or the texts themselves, one type for all."""
    if set(texts) <= {"True", "False"}:
        return [text == "True" for text in texts]
    for parse in (int, float):
        try:
            return [parse(text) for text in texts]
        except ValueError:
            continue
    return list(texts)


def infer_distribution(values: Sequence[Any]):
    """An Optuna distribution covering ``values`` (as ``typed_values`` returns them)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        low, high = min(values), max(values)
        log = low > 0 and high / low > LOG_SCALE_SPAN
        if all(isinstance(v, int) for v in values):
            return IntDistribution(int(low), int(high), log=log)
        return FloatDistribution(float(low), float(high), log=log)
    return CategoricalDistribution(sorted(set(values), key=str))


def rebuild_study(trials: Sequence[TrialRecord], mode: str):
    """A study of the trials that have a value, over the params that varied between them."""
    import optuna

    measured = [trial for trial in trials if trial.best_value is not None]
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" line for a study in memory
    try:
        study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    finally:
        optuna.logging.set_verbosity(previous)
    params: dict[str, dict[str, Any]] = {}  # param -> {run id: typed value}
    for name in sorted({key for trial in measured for key in trial.params}):
        present = [trial for trial in measured if name in trial.params]
        values = typed_values([trial.params[name] for trial in present])
        if len(set(values)) > 1:
            params[name] = {trial.run_id: value for trial, value in zip(present, values)}
    distributions = {name: infer_distribution(list(by_run.values())) for name, by_run in params.items()}
    for trial in measured:
        chosen = {name: by_run[trial.run_id] for name, by_run in params.items() if trial.run_id in by_run}
        study.add_trial(optuna.trial.create_trial(
            value=trial.best_value, params=chosen, distributions={name: distributions[name] for name in chosen}
        ))
    return study


@dataclass(frozen=True)
class Importances:
    """Normalised importances, most important first; or why there are none (``note``)."""

    values: dict[str, float]
    evaluator: Any = None
    target_quantile: float = 0.0
    note: str | None = None


def target_quantile(trials: int) -> float:
    """The share of ``trials`` counted as the top: 10 %, at least five trials, at most half."""
    return min(WIDEST_QUANTILE, max(TOP_QUANTILE, TOP_TRIALS_WANTED / trials))


def importances(study, metric: str) -> Importances:
    """PED-ANOVA importances of the study's params; a note instead when they cannot be computed."""
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    complete = study.trials
    if len(complete) < 2:
        return Importances({}, note=f"Parameter importances need at least 2 trials with a {metric}; "
                                    f"this search has {len(complete)}.")
    if not any(trial.params for trial in complete):
        return Importances({}, note="Parameter importances need params that vary; every trial had the same ones.")
    quantile = target_quantile(len(complete))
    evaluator = PedAnovaImportanceEvaluator(target_quantile=quantile)
    # Optuna warns when few trials back a param; the report says how many trials there are instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = get_param_importances(study, evaluator=evaluator)
    return Importances(values, evaluator, quantile)
