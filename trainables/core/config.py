"""The trainer's configuration: one typed record, loaded from YAML and ``key=value`` overrides.

Every key name here is shared with search spaces, presets, MLflow params and exports, so a
config can travel between them unchanged. A variant is a point on independent axes, each
described once by its own specs: the loss (``trainables.core.losses.LOSSES``), the architecture
(``trainables.core.models.ARCHITECTURES``), the optimizer (``trainables.core.optimizers.OPTIMIZERS``) and
the dataset (``trainables.data.datasets.DATASETS``); conditioning and the D:G ratio are plain keys.
This module only reads the specs: which names exist, which keys belong to one loss or one
optimizer (``clip`` to ``wgan``, ``beta1`` to Adam ...), and the defaults each fills in. Such keys
default to ``None`` and must stay unset for every other variant, so a search never records a
hyperparameter that had no effect.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from trainables.core.losses import LOSSES
from trainables.core.models import ARCHITECTURES
from trainables.core.optimizers import OPTIMIZERS
from trainables.core.precision import MIXED_PRECISIONS
from trainables.core.train_config import TrainConfig
from trainables.core.user_nets import import_builder, is_import_path
from trainables.data.datasets import DATASETS
from trainables.data.files import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE
from trainables.errors import ConfigError

# Defaults of the shared keys that a loss may change (see ``LossSpec.defaults``).
BASE_DEFAULTS = {"optimizer": "adam", "d_steps": 1}


def _owners(specs: Mapping[str, Any], keys_of) -> dict[str, tuple[str, ...]]:
    """Each key that only some specs of an axis read -> the names of those specs."""
    owners: dict[str, tuple[str, ...]] = {}
    for name, spec in specs.items():
        for key in keys_of(spec):
            owners[key] = owners.get(key, ()) + (name,)
    return owners


LOSS_KEYS = _owners(LOSSES, lambda spec: spec.own_keys)
OPTIMIZER_KEYS = _owners(OPTIMIZERS, lambda spec: spec.options)


KEYS = tuple(f.name for f in fields(TrainConfig))
_TYPES = {f.name: f.type for f in fields(TrainConfig)}


def default_optimizer(loss: str) -> str:
    return LOSSES[loss].defaults.get("optimizer", BASE_DEFAULTS["optimizer"])


def applies(key: str, chosen: Mapping[str, Any]) -> bool:
    """Whether ``key`` has an effect given the loss and optimizer chosen so far (defaults otherwise)."""
    loss = chosen.get("loss") or TrainConfig.loss
    if key in LOSS_KEYS:
        return loss in LOSS_KEYS[key]
    if key in OPTIMIZER_KEYS:
        return (chosen.get("optimizer") or default_optimizer(loss)) in OPTIMIZER_KEYS[key]
    return True


def _coerce(key: str, value: Any) -> Any:
    """Check one value against its declared type; numeric strings such as '1e-4' become floats."""
    if value is None:
        if "None" in _TYPES[key]:
            return None
        raise ConfigError(f"config: {key} must not be null")
    declared = _TYPES[key].replace(" | None", "")
    if declared == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config: {key} must be true or false, got {value!r}")
    if declared == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"config: {key} must be an integer, got {value!r}")
    if declared == "float":
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"config: {key} must be a number, got {value!r}") from None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"config: {key} must be finite, got {value!r}")
            return float(value)
        raise ConfigError(f"config: {key} must be a number, got {value!r}")
    if isinstance(value, str):
        return value
    raise ConfigError(f"config: {key} must be a string, got {value!r}")


def _check_choice(key: str, value: str | None, choices: Sequence[str]) -> None:
    if value is not None and value not in choices:
        raise ConfigError(f"config: unknown {key} {value!r}; choose one of {', '.join(choices)}")


def _check_applies(raw: Mapping[str, Any], owners_of: Mapping[str, Sequence[str]], axis: str, chosen: str) -> None:
    for key, owners in owners_of.items():
        if raw.get(key) is not None and chosen not in owners:
            raise ConfigError(
                f"config: {key} does not apply to {axis} {chosen!r} (only to {', '.join(owners)}); remove it"
            )


# Each rule of a value's range, once, with the keys it bounds.
_RANGES = (
    (lambda v: v > 0, "must be > 0", ("lr_g", "lr_d", "clip")),
    (lambda v: v >= 0, "must be >= 0", ("gp_weight", "seed")),
    (lambda v: v >= 1, "must be >= 1", ("d_steps", "g_steps", "latent_dim", "steps", "eval_every")),
    (lambda v: 0 <= v < 1, "must be in [0, 1)", ("beta1", "beta2")),
    (lambda v: 0 <= v < 0.5, "must be in [0, 0.5)", ("label_smoothing",)),
    (lambda v: v >= 2, "must be >= 2", ("batch_size",)),
    (lambda v: v >= 4, "must be >= 4", ("width",)),
    (lambda v: v >= 100, "must be >= 100", ("eval_samples",)),
    (lambda v: v in (1, 3), "must be 1 (grey) or 3 (RGB)", ("channels",)),
    (lambda v: MIN_IMAGE_SIZE <= v <= MAX_IMAGE_SIZE, f"must be {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}",
     ("image_size",)),
    (lambda v: v >= 0, "must be >= 0", ("num_classes",)),
)
# Keys that describe the user's own images, and apply to no built-in dataset.
FILE_KEYS = ("image_size", "channels", "num_classes")


def config_from_dict(raw: Mapping[str, Any]) -> TrainConfig:
    """Validate a mapping of config keys and fill in the variant's defaults."""
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(f"config: unknown key {unknown[0]!r}; known keys are {', '.join(KEYS)}")
    values = {key: _coerce(key, value) for key, value in raw.items()}
    for ok, rule, keys in _RANGES:
        for key in keys:
            if values.get(key) is not None and not ok(values[key]):
                raise ConfigError(f"config: {key} {rule}, got {values[key]!r}")

    loss = values.get("loss", TrainConfig.loss)
    _check_choice("loss", loss, tuple(LOSSES))
    _check_choice("dataset", values.get("dataset"), tuple(DATASETS))
    if values.get("arch") is not None and is_import_path(values["arch"]):
        import_builder(values["arch"])
    else:
        _check_choice("arch", values.get("arch"), (*ARCHITECTURES, "package.module:function"))
    _check_choice("optimizer", values.get("optimizer"), tuple(OPTIMIZERS))
    _check_choice("mixed_precision", values.get("mixed_precision"), tuple(MIXED_PRECISIONS))
    _check_applies(values, LOSS_KEYS, "loss", loss)

    _fill_defaults(values, {**LOSSES[loss].own_keys, **BASE_DEFAULTS, **LOSSES[loss].defaults})
    _check_applies(values, OPTIMIZER_KEYS, "optimizer", values["optimizer"])
    _fill_defaults(values, OPTIMIZERS[values["optimizer"]].options)
    arch = values.get("arch", TrainConfig.arch)
    dataset = values.get("dataset", TrainConfig.dataset)
    if not DATASETS[dataset].from_files:
        for key in FILE_KEYS:
            if values.get(key) is not None:
                files = ", ".join(name for name, spec in DATASETS.items() if spec.from_files)
                raise ConfigError(f"config: {key} applies only to the datasets read from files ({files}); remove it")
    if arch in ARCHITECTURES and ARCHITECTURES[arch].images_only and not DATASETS[dataset].is_image:
        points = ", ".join(name for name, spec in ARCHITECTURES.items() if not spec.images_only)
        raise ConfigError(f"config: arch {arch!r} needs an image dataset; use arch {points} for {dataset}")
    if values.get("evaluator") is not None and not DATASETS[dataset].is_image:
        raise ConfigError(f"config: evaluator applies only to image datasets; {dataset} is scored by its mixture, remove it")
    if arch in ARCHITECTURES:  # the user's own nets read width only if they choose to
        _fill_defaults(values, {"width": ARCHITECTURES[arch].default_width})
    _check_device(values.get("device", TrainConfig.device))
    return TrainConfig(**values)


def _fill_defaults(values: dict[str, Any], defaults: Mapping[str, Any]) -> None:
    for key, default in defaults.items():
        if values.get(key) is None:
            values[key] = default


def _check_device(device: str) -> None:
    if device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit()):
        return
    raise ConfigError(f"config: device must be auto, cpu, cuda or cuda:N, got {device!r}")


def resolve_device(name: str):
    """The torch device of a ``device`` value: ``auto`` takes CUDA when present; asking for CUDA without it is an error."""
    import torch

    _check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"config: device {name!r} was asked for but no CUDA device is available; use device=cpu or auto")
    return torch.device(name)


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """Turn ``key=value`` strings into a mapping; values are read as YAML scalars."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"config: override {pair!r} is not of the form key=value")
        parsed[key.strip()] = yaml.safe_load(text) if text.strip() else None
    return parsed


def read_yaml_mapping(path: str | Path, what: str = "config") -> dict[str, Any]:
    """Read a YAML file that must hold one mapping; errors are one line naming the file."""
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what}: file {str(path)!r} does not exist") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{what}: {str(path)!r} is not valid YAML{where}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{what}: {str(path)!r} must hold a mapping of keys to values")
    return loaded


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """The config of ``gantune train``: a YAML file (optional) with ``key=value`` overrides on top."""
    raw = read_yaml_mapping(path) if path is not None else {}
    return config_from_dict({**raw, **parse_overrides(overrides)})
