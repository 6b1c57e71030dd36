"""Search presets: a YAML file that says what to search, how, and for how long.

A preset names the dataset, pins or narrows any trainer key under ``params`` (a scalar pins, a
list is a choice, ``{low, high, log}`` is a range), and sets the metric, searcher, scheduler,
budget and per-trial resources. Everything is checked on loading (``search_spaces.preset_reader``),
before Ray starts, and every problem is one line that names the file and the key; so a typo never
costs a cluster start-up.

Layout::

    dataset: grid25
    metric: js_modes          # an objective of the dataset; mode (min/max) follows from it
    searcher: tpe             # tpe | random | qmc, or {name: tpe, seed: 0}
    scheduler: {name: asha, grace_period: 200, reduction_factor: 3}   # asha | fifo | pbt
    budget: {num_samples: 16, max_steps: 2000, time_budget: 600, max_concurrent: 4, cohort: 1}
    resources: {cpus_per_trial: 1, gpus_per_trial: 0}
    floor: {modes_covered: 20}   # `gantune promote` refuses a generator worse than this
    params: {arch: mlp, loss: [gan, wgan-gp], lr_g: {low: 1e-4, high: 1e-2}}
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from search_spaces.preset_reader import PresetReader
from search_spaces.preset_types import Budget, Resources, SearchPreset
from trainables.core.config import read_yaml_mapping

PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def preset_from_dict(raw: Mapping[str, Any], name: str = "preset", source: str | None = None) -> SearchPreset:
    return PresetReader(source or name).preset(name, raw)


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
    budget = {k: v for k, v in given.items() if k in Budget.__dataclass_fields__}
    resources = {k: v for k, v in given.items() if k in Resources.__dataclass_fields__}
    unknown = set(given) - set(budget) - set(resources)
    if unknown:
        raise TypeError(f"not budget or resource keys: {sorted(unknown)}")
    return dataclasses.replace(
        preset,
        budget=dataclasses.replace(preset.budget, **budget),
        resources=dataclasses.replace(preset.resources, **resources),
    )
