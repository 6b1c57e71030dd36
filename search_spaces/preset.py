"""Search presets: a YAML file that says what to search, how, and for how long.

A preset names the dataset, pins or narrows any trainer key under ``params`` (a scalar pins, a
list is a choice, ``{low, high, log}`` is a range), and sets the metric, searcher, scheduler,
budget and per-trial resources. Everything is checked here, before Ray starts, and every problem
is one line that names the file and the key; so a typo never costs a cluster start-up.

Layout::

    dataset: grid25
    metric: kl_modes          # mode (min/max) follows from the metric
    searcher: tpe             # tpe | random | qmc, or {name: tpe, seed: 0}
    scheduler: {name: asha, grace_period: 200, reduction_factor: 3}   # asha | fifo | pbt
    budget: {num_samples: 16, max_steps: 2000, time_budget: 600, max_concurrent: 4}
    resources: {cpus_per_trial: 1, gpus_per_trial: 0}
    floor: {modes_covered: 20}   # `gantune promote` refuses a generator worse than this
    params: {arch: mlp, loss: [gan, wgan-gp], lr_g: {low: 1e-4, high: 1e-2}}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from trainables.config import (
    DATASET_NAMES,
    LOSS_SPECIFIC_KEYS,
    OPTIMIZER_SPECIFIC_KEYS,
    POINT_DATASETS,
    ConfigError,
    TrainConfig,
    config_from_dict,
    read_yaml_mapping,
)
from trainables.objectives import IMAGE_METRICS, IMAGE_OBJECTIVES, MIXTURE_METRICS, MIXTURE_OBJECTIVES
from search_spaces.space import Choice, DefineByRun, Param, Pinned, Range, full_space

PRESETS_DIR = Path(__file__).resolve().parent / "presets"

SEARCHERS = ("tpe", "random", "qmc")
SCHEDULERS = ("asha", "fifo", "pbt")
# What PBT perturbs by default: the learning rates and the D:G ratio, the knobs that decide
# whether a running GAN stays balanced.
PBT_DEFAULT_MUTATIONS = ("lr_g", "lr_d", "d_steps")

_TOP_KEYS = ("dataset", "metric", "mode", "searcher", "scheduler", "budget", "resources", "floor", "params")
_SEARCHER_KEYS = ("name", "seed")
_SCHEDULER_KEYS = ("name", "grace_period", "reduction_factor", "perturbation_interval", "mutate")
_BUDGET_KEYS = ("num_samples", "max_steps", "time_budget", "max_concurrent")
_RESOURCE_KEYS = ("cpus_per_trial", "gpus_per_trial")
_NOT_PARAMS = {"dataset": "set the top-level dataset instead", "steps": "set budget.max_steps instead"}
_NUMERIC_KEYS = {f.name for f in dataclasses.fields(TrainConfig) if f.type.split(" |")[0] in ("int", "float")}
_INT_KEYS = {f.name for f in dataclasses.fields(TrainConfig) if f.type.split(" |")[0] == "int"}


@dataclass(frozen=True)
class Budget:
    num_samples: int = 16
    max_steps: int = 2000
    time_budget: float | None = None
    max_concurrent: int | None = None


@dataclass(frozen=True)
class Resources:
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0


@dataclass(frozen=True)
class Scheduler:
    name: str = "asha"
    grace_period: int | None = None  # steps before ASHA's first cut; None: the first evaluation
    reduction_factor: float = 3.0
    perturbation_interval: int | None = None  # steps between PBT perturbations; None: every evaluation
    mutate: tuple[str, ...] = PBT_DEFAULT_MUTATIONS


@dataclass(frozen=True)
class SearchPreset:
    name: str
    dataset: str
    metric: str
    mode: str
    params: dict[str, Param]
    searcher: str = "tpe"
    seed: int = 0
    scheduler: Scheduler = field(default_factory=Scheduler)
    budget: Budget = field(default_factory=Budget)
    resources: Resources = field(default_factory=Resources)
    # The least a generator must reach to be promoted: metric -> bound in the metric's direction.
    floor: dict[str, float] = field(default_factory=dict)

    @property
    def eval_every(self) -> int:
        pinned = self.params.get("eval_every")
        return pinned.value if isinstance(pinned, Pinned) else TrainConfig.eval_every

    def define_by_run(self) -> DefineByRun:
        """The trial's config: the params plus the dataset and the step budget, always pinned."""
        fixed = {"dataset": Pinned(self.dataset), "steps": Pinned(self.budget.max_steps)}
        return DefineByRun({**self.params, **fixed})

    def to_dict(self) -> dict[str, Any]:
        """The resolved preset in the YAML layout: loading it again gives the same search."""
        return {
            "dataset": self.dataset,
            "metric": self.metric,
            "mode": self.mode,
            "searcher": {"name": self.searcher, "seed": self.seed},
            "scheduler": {**dataclasses.asdict(self.scheduler), "mutate": list(self.scheduler.mutate)},
            "budget": dataclasses.asdict(self.budget),
            "resources": dataclasses.asdict(self.resources),
            "floor": dict(self.floor),
            "params": {key: _param_to_yaml(param) for key, param in self.params.items()},
        }


def _param_to_yaml(param: Param) -> Any:
    if isinstance(param, Pinned):
        return param.value
    if isinstance(param, Choice):
        return list(param.values)
    return {"low": param.low, "high": param.high, "log": param.log}


class _PresetReader:
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
        context: dict[str, Any] = {"dataset": dataset, "arch": "mlp" if dataset in POINT_DATASETS else "dcgan"}
        if key in LOSS_SPECIFIC_KEYS:
            context["loss"] = LOSS_SPECIFIC_KEYS[key][0]
        if key in OPTIMIZER_SPECIFIC_KEYS:
            context["optimizer"] = OPTIMIZER_SPECIFIC_KEYS[key][0]
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
                raise self.fail(f"params.{key}", "unknown trainer key; see trainables/config.py for the keys")
            params[key] = self.param(dataset, key, value)
        return self.without_unused_losses(params, raw)

    def without_unused_losses(self, params: dict[str, Param], raw: Mapping[str, Any]) -> dict[str, Param]:
        """Drop loss-specific keys no searched loss uses; one the preset set itself is an error."""
        loss = params["loss"]
        losses = set(loss.values) if isinstance(loss, Choice) else {loss.value}
        for key, owners in LOSS_SPECIFIC_KEYS.items():
            if losses & set(owners) or key not in params:
                continue
            if key in raw:
                raise self.fail(f"params.{key}", f"applies only to loss {', '.join(owners)}, which params.loss excludes")
            del params[key]
        return params

    # -------------------------------------------------------------------- the rest
    def metric(self, dataset: str, raw: Mapping[str, Any]) -> tuple[str, str]:
        known, objectives = (MIXTURE_METRICS, MIXTURE_OBJECTIVES) if dataset in POINT_DATASETS else (IMAGE_METRICS, IMAGE_OBJECTIVES)
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

    def budget(self, raw: Mapping[str, Any]) -> Budget:
        section = self.section(raw, "budget", _BUDGET_KEYS)
        values = {}
        for key in ("num_samples", "max_steps", "max_concurrent"):
            if section.get(key) is not None:
                values[key] = self.number(f"budget.{key}", section[key], integer=True, minimum=1, strict=False)
        if section.get("time_budget") is not None:
            values["time_budget"] = self.number("budget.time_budget", section["time_budget"],
                                                integer=False, minimum=0, strict=True)
        return Budget(**values)

    def resources(self, raw: Mapping[str, Any]) -> Resources:
        section = self.section(raw, "resources", _RESOURCE_KEYS)
        values = {}
        if section.get("cpus_per_trial") is not None:
            values["cpus_per_trial"] = self.number("resources.cpus_per_trial", section["cpus_per_trial"],
                                                   integer=False, minimum=0, strict=True)
        if section.get("gpus_per_trial") is not None:
            values["gpus_per_trial"] = self.number("resources.gpus_per_trial", section["gpus_per_trial"],
                                                   integer=False, minimum=0, strict=False)
        return Resources(**values)

    def floor(self, dataset: str, raw: Mapping[str, Any]) -> dict[str, float]:
        known = MIXTURE_METRICS if dataset in POINT_DATASETS else IMAGE_METRICS
        section = self.section(raw, "floor", tuple(known))
        for metric, bound in section.items():
            self.number(f"floor.{metric}", bound, integer=False, minimum=0, strict=False)
        return {metric: float(bound) for metric, bound in section.items()}

    def searcher(self, raw: Mapping[str, Any]) -> tuple[str, int]:
        section = self.section(raw, "searcher", _SEARCHER_KEYS, shorthand="name")
        name = self.choice("searcher.name", section.get("name", "tpe"), SEARCHERS)
        seed = self.number("searcher.seed", section.get("seed", 0), integer=True, minimum=0, strict=False)
        return name, seed

    def scheduler(self, raw: Mapping[str, Any], params: Mapping[str, Param], budget: Budget) -> Scheduler:
        section = self.section(raw, "scheduler", _SCHEDULER_KEYS, shorthand="name")
        name = self.choice("scheduler.name", section.get("name", "asha"), SCHEDULERS)
        values: dict[str, Any] = {"name": name}
        for key in ("grace_period", "perturbation_interval"):
            if section.get(key) is not None:
                values[key] = self.number(f"scheduler.{key}", section[key], integer=True, minimum=1, strict=False)
                if values[key] > budget.max_steps:
                    raise self.fail(f"scheduler.{key}", f"{values[key]} steps exceeds budget.max_steps {budget.max_steps}")
        if section.get("reduction_factor") is not None:
            values["reduction_factor"] = self.number("scheduler.reduction_factor", section["reduction_factor"],
                                                     integer=False, minimum=1, strict=True)
        if section.get("mutate") is not None:
            values["mutate"] = self.mutations(section["mutate"], params)
        return Scheduler(**values)

    def mutations(self, raw: Any, params: Mapping[str, Param]) -> tuple[str, ...]:
        if not isinstance(raw, list) or not raw:
            raise self.fail("scheduler.mutate", "must be a non-empty list of searched numeric params, e.g. [lr_g, lr_d]")
        for key in raw:
            if key not in params or isinstance(params[key], Pinned) or key not in _NUMERIC_KEYS:
                raise self.fail("scheduler.mutate", f"{key!r} is not a searched numeric param of this preset")
            if key in LOSS_SPECIFIC_KEYS or key in OPTIMIZER_SPECIFIC_KEYS:
                raise self.fail("scheduler.mutate", f"{key!r} does not apply to every trial, so PBT cannot perturb it")
        return tuple(raw)

    def preset(self, name: str, raw: Mapping[str, Any]) -> SearchPreset:
        unknown = sorted(set(raw) - set(_TOP_KEYS))
        if unknown:
            raise self.fail(unknown[0], f"unknown key; known keys are {', '.join(_TOP_KEYS)}")
        if "dataset" not in raw:
            raise self.fail("dataset", f"missing; choose one of {', '.join(DATASET_NAMES)}")
        dataset = self.choice("dataset", raw["dataset"], DATASET_NAMES)
        params = self.params(dataset, raw.get("params"))
        metric, mode = self.metric(dataset, raw)
        searcher, seed = self.searcher(raw)
        budget = self.budget(raw)
        preset = SearchPreset(
            name=name, dataset=dataset, metric=metric, mode=mode, params=params, searcher=searcher, seed=seed,
            scheduler=self.scheduler(raw, params, budget), budget=budget, resources=self.resources(raw),
            floor=self.floor(dataset, raw),
        )
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


def preset_from_dict(raw: Mapping[str, Any], name: str = "preset", source: str | None = None) -> SearchPreset:
    return _PresetReader(source or name).preset(name, raw)


def load_preset(path: str | Path) -> SearchPreset:
    """Load a preset file; a bare name such as ``grid25`` means the bundled ``presets/grid25.yaml``."""
    path = Path(path)
    if not path.exists() and path.suffix == "" and (PRESETS_DIR / f"{path}.yaml").is_file():
        path = PRESETS_DIR / f"{path}.yaml"
    raw = read_yaml_mapping(path, what="preset")
    return preset_from_dict(raw, name=path.stem, source=str(path))


def with_overrides(preset: SearchPreset, **flags: Any) -> SearchPreset:
    """Apply command-line overrides (``num_samples=``, ``cpus_per_trial=`` ...); ``None`` keeps the preset's value."""
    given = {key: value for key, value in flags.items() if value is not None}
    budget = {k: v for k, v in given.items() if k in _BUDGET_KEYS}
    resources = {k: v for k, v in given.items() if k in _RESOURCE_KEYS}
    unknown = set(given) - set(budget) - set(resources)
    if unknown:
        raise TypeError(f"not budget or resource keys: {sorted(unknown)}")
    return dataclasses.replace(
        preset,
        budget=dataclasses.replace(preset.budget, **budget),
        resources=dataclasses.replace(preset.resources, **resources),
    )
