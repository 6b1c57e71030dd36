"""Reading a preset mapping into a ``SearchPreset``, with every error one line naming the file and key.

Trainer values are checked by the trainer's own config rules, in a context where the key applies;
metrics and floors by the dataset's spec; each searched loss is built once at its low corner, so a
combination the trainer refuses fails here, before Ray starts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from search_spaces.preset_types import PBT_DEFAULT_MUTATIONS, Budget, Resources, Scheduler, SearchPreset
from search_spaces.space import Choice, Param, Pinned, Range, full_space
from trainables.core.config import FILE_KEYS, LOSS_KEYS, OPTIMIZER_KEYS, TrainConfig, config_from_dict
from trainables.core.models import ARCHITECTURES
from trainables.data.datasets import DATASETS, resolve_files, spec_of
from trainables.errors import ConfigError, UsageError

SEARCHERS = ("tpe", "random", "qmc")
SCHEDULERS = ("asha", "fifo", "pbt")
# PBT copies whole Ray trials into one another; a cohort's slot-trials live inside one Ray trial.
COHORT_WITH_PBT = "a cohort trains with the asha or fifo scheduler, not pbt; set budget.cohort: 1 or another scheduler"
TOP_KEYS = ("dataset", "metric", "mode", "searcher", "scheduler", "budget", "resources", "floor", "params")
SEARCHER_KEYS = ("name", "seed")
SCHEDULER_KEYS = ("name", "grace_period", "reduction_factor", "perturbation_interval", "mutate")
_NOT_PARAMS = {"dataset": "set the top-level dataset instead", "steps": "set budget.max_steps instead"}
_NUMERIC_KEYS = {f.name for f in dataclasses.fields(TrainConfig) if f.type.split(" |")[0] in ("int", "float")}
_INT_KEYS = {f.name for f in dataclasses.fields(TrainConfig) if f.type.split(" |")[0] == "int"}


class PresetReader:
    """Turns one preset mapping into a ``SearchPreset``; every error names the file and the key."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"preset {self.source}: {where}: {message}")

    def section(self, raw: Mapping[str, Any], key: str, known: tuple[str, ...], shorthand: str | None = None) -> dict:
        value = raw.get(key)
        if value is None:
            return {}
        if shorthand and isinstance(value, str):
            return {shorthand: value}
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a mapping of {', '.join(known)}")
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}", f"unknown key; known keys are {', '.join(known)}")
        return value

    def number(self, where: str, value: Any, *, integer: bool, minimum: float, strict: bool) -> int | float:
        kind = "an integer" if integer else "a number"
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or value < minimum or (strict and value == minimum):
            raise self.fail(where, f"must be {kind} {bound}, got {value!r}")
        return value

    def choice(self, where: str, value: Any, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(where, f"unknown value {value!r}; choose one of {', '.join(choices)}")
        return value

    # ------------------------------------------------------------------------ params
    def scalar(self, dataset: str, key: str, value: Any, where: str) -> Any:
        """Check one trainer value with the trainer's own rules, in a context where ``key`` applies."""
        if isinstance(value, (list, dict)):
            raise self.fail(where, f"must be a single value, got {value!r}")
        usable = [name for name, spec in ARCHITECTURES.items() if DATASETS[dataset].is_image or not spec.images_only]
        context: dict[str, Any] = {"dataset": dataset, "arch": usable[0]}
        if key in LOSS_KEYS:
            context["loss"] = LOSS_KEYS[key][0]
        if key in OPTIMIZER_KEYS:
            context["optimizer"] = OPTIMIZER_KEYS[key][0]
        try:
            return getattr(config_from_dict({**context, key: value}), key)
        except ConfigError as err:
            raise self.fail(where, str(err).removeprefix("config: ")) from None

    def param(self, dataset: str, key: str, value: Any) -> Param:
        where = f"params.{key}"
        if isinstance(value, list):
            if not value:
                raise self.fail(where, "empty choice list; give at least one value, or a single value to pin it")
            values = tuple(dict.fromkeys(self.scalar(dataset, key, v, where) for v in value))
            return Pinned(values[0]) if len(values) == 1 else Choice(values)
        if isinstance(value, dict):
            return self.range(dataset, key, value, where)
        return Pinned(self.scalar(dataset, key, value, where))

    def range(self, dataset: str, key: str, value: dict, where: str) -> Range:
        if key not in _NUMERIC_KEYS:
            raise self.fail(where, "a {low, high} range needs a numeric key; give a list of choices instead")
        unknown = sorted(set(value) - {"low", "high", "log"})
        if unknown or "low" not in value or "high" not in value:
            raise self.fail(where, "a range is {low: L, high: H} with an optional log: true")
        low = self.scalar(dataset, key, value["low"], f"{where}.low")
        high = self.scalar(dataset, key, value["high"], f"{where}.high")
        log = value.get("log", False)
        if not isinstance(log, bool):
            raise self.fail(f"{where}.log", f"must be true or false, got {log!r}")
        if low > high:
            raise self.fail(where, f"low {low!r} is above high {high!r}")
        if log and low <= 0:
            raise self.fail(where, f"a log range needs low > 0, got {low!r}")
        return Range(low, high, log=log, integer=key in _INT_KEYS)

    def params(self, dataset: str, raw: Any) -> dict[str, Param]:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise self.fail("params", "must be a mapping of trainer keys to a value, a list or {low, high}")
        params = full_space(dataset)
        for key, value in raw.items():
            if key in _NOT_PARAMS:
                raise self.fail(f"params.{key}", _NOT_PARAMS[key])
            if key not in TrainConfig.__dataclass_fields__:
                raise self.fail(f"params.{key}", "unknown trainer key; see trainables/core/config.py for the keys")
            params[key] = self.param(dataset, key, value)
        return self.without_unused_losses(params, raw)

    def without_unused_losses(self, params: dict[str, Param], raw: Mapping[str, Any]) -> dict[str, Param]:
        """Drop loss-specific keys no searched loss uses; one the preset set itself is an error."""
        loss = params["loss"]
        losses = set(loss.values) if isinstance(loss, Choice) else {loss.value}
        for key, owners in LOSS_KEYS.items():
            if losses & set(owners) or key not in params:
                continue
            if key in raw:
                raise self.fail(f"params.{key}", f"applies only to loss {', '.join(owners)}, which params.loss excludes")
            del params[key]
        return params

    def files(self, dataset: str, params: dict[str, Param], raw: Mapping[str, Any]) -> dict[str, Param]:
        """For the user's images: ``data_root`` made absolute (trials run in folders of their own), and
        ``image_size``, ``channels`` and ``num_classes`` read from the files and pinned, so every trial,
        checkpoint and export knows the images' shape without the files. Unlabelled images pin
        ``conditional`` to false unless the preset asked for it, which is then one line."""
        if not DATASETS[dataset].from_files:
            return params
        for key in ("data_root", *FILE_KEYS):
            if key in params and not isinstance(params[key], Pinned):
                raise self.fail(f"params.{key}", "must be a single value: every trial trains on the same images")
        given = {key: params[key].value for key in ("data_root", *FILE_KEYS) if key in params}
        if not given.get("data_root"):
            raise self.fail("params.data_root", f"dataset {dataset} needs the path of its "
                            f"{'folder of images' if dataset == 'folder' else '.npy or .npz file'}")
        given["data_root"] = str(Path(given["data_root"]).expanduser().resolve())
        conditional = params["conditional"]
        asked = {conditional.value} if isinstance(conditional, Pinned) else set(conditional.values)
        try:
            resolved = resolve_files(TrainConfig(dataset=dataset, conditional=True in asked and "conditional" in raw,
                                                 **given))
        except UsageError as err:
            raise self.fail("params", str(err).removeprefix("config: ")) from None
        pinned = {key: Pinned(getattr(resolved, key)) for key in ("data_root", *FILE_KEYS)}
        if resolved.num_classes < 2:
            pinned["conditional"] = Pinned(False)
        return {**params, **pinned}

    def user_evaluator(self, params: dict[str, Param]) -> dict[str, Param]:
        """The user's feature extractor, if any: one file for every trial, its path made absolute."""
        evaluator = params.get("evaluator")
        if evaluator is None:
            return params
        if not isinstance(evaluator, Pinned):
            raise self.fail("params.evaluator", "must be a single value: every trial is scored by the same features")
        if evaluator.value is None:
            return params
        return {**params, "evaluator": Pinned(str(Path(evaluator.value).expanduser().resolve()))}

    def check_reported(self, preset: SearchPreset) -> None:
        """The metric and the floor must be among what the dataset reports (unlabelled images, and
        images scored by the user's own features, report no class metrics)."""
        if not DATASETS[preset.dataset].is_image:
            return
        reported = spec_of(preset.data_config()).metrics
        for where, metric in [("metric", preset.metric), *((f"floor.{key}", key) for key in preset.floor)]:
            if metric not in reported:
                raise self.fail(where, f"{metric!r} needs class labels and the classifier evaluator, which this "
                                f"search has not; use one of {', '.join(reported)}")

    # -------------------------------------------------------------------- the rest
    def metric(self, dataset: str, raw: Mapping[str, Any]) -> tuple[str, str]:
        known, objectives = DATASETS[dataset].metrics, DATASETS[dataset].objectives
        metric = raw.get("metric", objectives[0])
        if metric not in known:
            raise self.fail("metric", f"{metric!r} is not reported for {dataset}; choose one of {', '.join(objectives)}")
        if metric not in objectives:
            raise self.fail("metric", f"{metric!r} is a diagnostic that a bad generator can win (it misses collapse or "
                            f"off-data samples); optimise one of {', '.join(objectives)}")
        mode = raw.get("mode", known[metric])
        if mode != known[metric]:
            raise self.fail("mode", f"{metric} is better when {'lower' if known[metric] == 'min' else 'higher'}; "
                            f"use mode: {known[metric]}")
        return metric, mode

    def numbers(self, raw: Mapping[str, Any], name: str, rules: Mapping[str, tuple[bool, float, bool]]) -> dict:
        """The numbers given in section ``name``, each checked by its rule (integer, minimum, strict)."""
        section = self.section(raw, name, tuple(rules))
        return {key: self.number(f"{name}.{key}", section[key], integer=integer, minimum=minimum, strict=strict)
                for key, (integer, minimum, strict) in rules.items() if section.get(key) is not None}

    def budget(self, raw: Mapping[str, Any]) -> Budget:
        count = (True, 1, False)
        return Budget(**self.numbers(raw, "budget", {"num_samples": count, "max_steps": count,
                                                     "time_budget": (False, 0, True), "max_concurrent": count,
                                                     "cohort": count}))

    def resources(self, raw: Mapping[str, Any]) -> Resources:
        return Resources(**self.numbers(raw, "resources", {"cpus_per_trial": (False, 0, True),
                                                           "gpus_per_trial": (False, 0, False)}))

    def floor(self, dataset: str, raw: Mapping[str, Any]) -> dict[str, float]:
        known = DATASETS[dataset].metrics
        section = self.section(raw, "floor", tuple(known))
        for metric, bound in section.items():
            self.number(f"floor.{metric}", bound, integer=False, minimum=0, strict=False)
        return {metric: float(bound) for metric, bound in section.items()}

    def searcher(self, raw: Mapping[str, Any]) -> tuple[str, int]:
        section = self.section(raw, "searcher", SEARCHER_KEYS, shorthand="name")
        name = self.choice("searcher.name", section.get("name", "tpe"), SEARCHERS)
        seed = self.number("searcher.seed", section.get("seed", 0), integer=True, minimum=0, strict=False)
        return name, seed

    def scheduler(self, raw: Mapping[str, Any], params: Mapping[str, Param], budget: Budget) -> Scheduler:
        section = self.section(raw, "scheduler", SCHEDULER_KEYS, shorthand="name")
        name = self.choice("scheduler.name", section.get("name", "asha"), SCHEDULERS)
        if name == "pbt" and budget.cohort > 1:
            raise self.fail("budget.cohort", COHORT_WITH_PBT)
        values: dict[str, Any] = {"name": name}
        for key in ("grace_period", "perturbation_interval"):
            if section.get(key) is not None:
                values[key] = self.number(f"scheduler.{key}", section[key], integer=True, minimum=1, strict=False)
                if values[key] > budget.max_steps:
                    raise self.fail(f"scheduler.{key}", f"{values[key]} steps exceeds budget.max_steps {budget.max_steps}")
        if section.get("reduction_factor") is not None:
            values["reduction_factor"] = self.number("scheduler.reduction_factor", section["reduction_factor"],
                                                     integer=False, minimum=1, strict=True)
            if budget.cohort > 1 and not float(values["reduction_factor"]).is_integer():
                raise self.fail("scheduler.reduction_factor", "must be a whole number when trials train in cohorts "
                                "(their successive halving keeps the top 1/N)")
        if section.get("mutate") is not None:
            values["mutate"] = self.mutations(section["mutate"], params)
        elif name == "pbt":
            values["mutate"] = self.default_mutations(params)
        return Scheduler(**values)

    def default_mutations(self, params: Mapping[str, Param]) -> tuple[str, ...]:
        """PBT's default keys that this preset searches: a pinned one has no range to perturb in."""
        searched = tuple(key for key in PBT_DEFAULT_MUTATIONS if not isinstance(params.get(key, Pinned(None)), Pinned))
        if not searched:
            raise self.fail("scheduler.mutate", f"PBT perturbs {', '.join(PBT_DEFAULT_MUTATIONS)} by default, and params "
                            "pins them all; list searched numeric params to perturb, e.g. mutate: [lr_g]")
        return searched

    def mutations(self, raw: Any, params: Mapping[str, Param]) -> tuple[str, ...]:
        if not isinstance(raw, list) or not raw:
            raise self.fail("scheduler.mutate", "must be a non-empty list of searched numeric params, e.g. [lr_g, lr_d]")
        for key in raw:
            if key not in params or isinstance(params[key], Pinned) or key not in _NUMERIC_KEYS:
                raise self.fail("scheduler.mutate", f"{key!r} is not a searched numeric param of this preset")
            if key in LOSS_KEYS or key in OPTIMIZER_KEYS:
                raise self.fail("scheduler.mutate", f"{key!r} does not apply to every trial, so PBT cannot perturb it")
        return tuple(raw)

    def preset(self, name: str, raw: Mapping[str, Any]) -> SearchPreset:
        unknown = sorted(set(raw) - set(TOP_KEYS))
        if unknown:
            raise self.fail(unknown[0], f"unknown key; known keys are {', '.join(TOP_KEYS)}")
        if "dataset" not in raw:
            raise self.fail("dataset", f"missing; choose one of {', '.join(DATASETS)}")
        dataset = self.choice("dataset", raw["dataset"], tuple(DATASETS))
        params = self.files(dataset, self.params(dataset, raw.get("params")), raw.get("params") or {})
        params = self.user_evaluator(params)
        metric, mode = self.metric(dataset, raw)
        searcher, seed = self.searcher(raw)
        budget = self.budget(raw)
        preset = SearchPreset(
            name=name, dataset=dataset, metric=metric, mode=mode, params=params, searcher=searcher, seed=seed,
            scheduler=self.scheduler(raw, params, budget), budget=budget, resources=self.resources(raw),
            floor=self.floor(dataset, raw),
        )
        self.check_reported(preset)
        self.check_corners(preset)
        return preset

    def check_corners(self, preset: SearchPreset) -> None:
        """Build one trainer config per searched loss, so a combination the trainer refuses fails now."""
        space = preset.define_by_run()
        loss = preset.params["loss"]
        for value in loss.values if isinstance(loss, Choice) else (loss.value,):
            try:
                config_from_dict(space.choose(_LowCorner({"loss": value})))
            except ConfigError as err:
                raise self.fail("params", f"with loss {value}: {str(err).removeprefix('config: ')}") from None


class _LowCorner:
    """A stand-in Optuna trial that answers each question with its first choice or its low end."""

    def __init__(self, forced: Mapping[str, Any]):
        self.forced = forced

    def suggest_categorical(self, name: str, choices: list) -> Any:
        return self.forced.get(name, choices[0])

    def suggest_int(self, name: str, low: int, high: int, log: bool = False) -> int:
        return low

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        return low
