"""The search algorithm and the trial scheduler a preset names, built for Ray Tune."""

from __future__ import annotations

import warnings
from typing import Any

from search_spaces.preset_types import SearchPreset
from search_spaces.space import Choice, Param, Range


def build_sampler(preset: SearchPreset, seed_offset: int = 0):
    """The preset's Optuna sampler; ``seed_offset`` gives each of several samplers on one study its own stream."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    seed = preset.seed + seed_offset
    samplers = {
        # Multivariate TPE models parameters jointly; `group` splits the joint model by which
        # parameters a trial actually sampled, which is what a conditional space needs.
        # `constant_liar` keeps concurrent trials from being handed the same suggestion.
        "tpe": lambda: optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "qmc": lambda: optuna.samplers.QMCSampler(seed=seed),
    }
    return samplers[preset.searcher]()


def initial_population(preset: SearchPreset) -> list[dict[str, Any]]:
    """PBT's starting configs, drawn from the preset's space by its sampler.

    Tune refuses a searcher next to PBT (PBT itself decides what runs next), so the population is
    sampled up front and handed over as fixed points; no Optuna study is kept for a PBT search.
    """
    import optuna

    study = optuna.create_study(sampler=build_sampler(preset))
    space = preset.define_by_run()
    return [space.choose(study.ask()) for _ in range(preset.budget.num_samples)]


def build_searcher(preset: SearchPreset, study_name: str, study_url: str) -> tuple[Any, dict[str, Any]]:
    """The search algorithm and the param space Tune needs beside it; the Optuna study lives at ``study_url``."""
    import optuna
    from ray.tune.search import BasicVariantGenerator

    from pipelines.search.optuna_searcher import ResumableOptunaSearch

    if preset.scheduler.name == "pbt":
        population = initial_population(preset)
        # Tune wants every preset key declared in the param space; a key a config does not use
        # (clip for a non-WGAN) is None there, which the trainer config reads as unset.
        keys = {key: None for config in population for key in config}
        return BasicVariantGenerator(points_to_evaluate=[{**keys, **c} for c in population]), keys
    searcher = ResumableOptunaSearch(
        space=preset.define_by_run(),
        metric=preset.metric,
        mode=preset.mode,
        sampler=build_sampler(preset),
        study_name=study_name,
        storage=optuna.storages.RDBStorage(study_url),
    )
    return searcher, {}


def _mutation(param: Param):
    """PBT's perturbation domain for one param: log scale for log ranges, neighbouring values for integers."""
    from ray import tune

    if isinstance(param, Choice):
        return list(param.values)
    if isinstance(param, Range) and param.integer:
        return list(range(int(param.low), int(param.high) + 1))
    if isinstance(param, Range):
        return (tune.loguniform if param.log else tune.uniform)(param.low, param.high)
    raise ValueError(f"a pinned param cannot be perturbed: {param}")


def build_scheduler(preset: SearchPreset):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    scheduler = preset.scheduler
    first_report = min(preset.eval_every, preset.budget.max_steps)
    if scheduler.name == "fifo":
        return FIFOScheduler()
    if scheduler.name == "pbt":
        return PopulationBasedTraining(
            time_attr="step",
            perturbation_interval=scheduler.perturbation_interval or first_report,
            hyperparam_mutations={key: _mutation(preset.params[key]) for key in scheduler.mutate},
        )
    return ASHAScheduler(
        time_attr="step",
        max_t=preset.budget.max_steps,
        grace_period=scheduler.grace_period or first_report,
        reduction_factor=scheduler.reduction_factor,
    )


def build_pruner(preset: SearchPreset):
    """The Optuna pruner a cohort's slot-trials are stopped by: asynchronous successive halving with the
    preset's ASHA settings (first rung at the grace period, then every reduction factor), or none."""
    import optuna

    scheduler = preset.scheduler
    if scheduler.name != "asha":
        return optuna.pruners.NopPruner()
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=scheduler.grace_period or min(preset.eval_every, preset.budget.max_steps),
        reduction_factor=int(scheduler.reduction_factor),
        min_early_stopping_rate=0,
    )
