"""A search preset as typed records: what to search, how, with what budget and resources.

``search_spaces.preset`` reads them from YAML (checking every key through
``search_spaces.preset_reader``); ``SearchPreset.to_dict`` writes them back in the same layout.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from search_spaces.space import Choice, DefineByRun, Param, Pinned
from trainables.core.config import TrainConfig

# What PBT perturbs by default: the learning rates and the D:G ratio, the knobs that decide
# whether a running GAN stays balanced.
PBT_DEFAULT_MUTATIONS = ("lr_g", "lr_d", "d_steps")


@dataclass(frozen=True)
class Budget:
    """How much to search: trials and steps per trial, and optionally a wall-clock limit (trials still
    running then are stopped) and a cap on how many trials run at once. ``cohort`` trials of one
    shape train as one model in each Ray trial (1: each trial alone); ``max_concurrent`` then
    caps the cohorts."""

    num_samples: int = 16
    max_steps: int = 2000
    time_budget: float | None = None
    max_concurrent: int | None = None
    cohort: int = 1


@dataclass(frozen=True)
class Resources:
    """What each trial asks Ray for; fractions share a device (0.25 GPUs: four trials per GPU)."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0


@dataclass(frozen=True)
class Scheduler:
    """Which trials run on: ASHA stops the worst early, PBT perturbs the worst into copies of the best."""

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

    def data_config(self) -> TrainConfig:
        """A trainer config of the search's data alone: its dataset and the data keys it pins
        (``data_root``, for the user's images their shape and classes, and the user's evaluator)."""
        keys = ("data_root", "image_size", "channels", "num_classes", "evaluator")
        return TrainConfig(dataset=self.dataset, **{key: self.params[key].value for key in keys
                                                    if isinstance(self.params.get(key), Pinned)})

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
