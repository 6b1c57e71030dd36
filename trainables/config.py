"""The trainer's configuration: one typed record, loaded from YAML and ``key=value`` overrides.

Every key name here is shared with search spaces, presets, MLflow params and exports, so a
config can travel between them unchanged. Options that belong to one loss (``clip`` for
``wgan``, ``gp_weight`` for ``wgan-gp``, ``minimax`` and ``label_smoothing`` for ``gan``) and
to one optimizer (``beta1``/``beta2`` for Adam) default to ``None``: they are filled in for
the variant that uses them and must stay unset for every other, so a search never records a
hyperparameter that had no effect.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

LOSS_NAMES = ("gan", "lsgan", "hinge", "wgan", "wgan-gp")
DATASET_NAMES = ("mnist", "fashion_mnist", "cifar10", "ring8", "grid25")
POINT_DATASETS = ("ring8", "grid25")
ARCH_NAMES = ("mlp", "dcgan")
OPTIMIZER_NAMES = ("adam", "rmsprop")

# Keys that only apply to some losses, and the losses they apply to.
LOSS_SPECIFIC_KEYS = {
    "minimax": ("gan",),
    "label_smoothing": ("gan",),
    "clip": ("wgan",),
    "gp_weight": ("wgan-gp",),
}
OPTIMIZER_SPECIFIC_KEYS = {"beta1": ("adam",), "beta2": ("adam",)}


class ConfigError(ValueError):
    """A config problem, phrased as one line that names the key and says how to fix it."""


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist"
    data_root: str | None = None
    arch: str = "dcgan"
    loss: str = "gan"
    minimax: bool | None = None
    conditional: bool = False
    spectral_norm: bool = False
    d_steps: int | None = None
    g_steps: int = 1
    clip: float | None = None
    gp_weight: float | None = None
    label_smoothing: float | None = None
    optimizer: str | None = None
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float | None = None
    beta2: float | None = None
    batch_size: int = 64
    latent_dim: int = 100
    width: int | None = None
    steps: int = 2000
    eval_every: int = 500
    eval_samples: int = 10000
    seed: int = 0
    device: str = "auto"
    cuda_graph: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        return config_from_dict({**self.to_dict(), **changes})

    @property
    def uses_gradient_penalty(self) -> bool:
        return bool(self.gp_weight)


KEYS = tuple(f.name for f in fields(TrainConfig))
_TYPES = {f.name: f.type for f in fields(TrainConfig)}

# Defaults that depend on the variant: the values the GAN literature uses for it.
_VARIANT_DEFAULTS = {
    "gan": {"minimax": False, "label_smoothing": 0.0},
    "wgan": {"clip": 0.01, "optimizer": "rmsprop", "d_steps": 5},
    "wgan-gp": {"gp_weight": 10.0, "d_steps": 5},
}
_ARCH_WIDTH = {"dcgan": 64, "mlp": 256}
_ADAM_BETAS = {"beta1": 0.5, "beta2": 0.999}


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


def _check_applies(raw: Mapping[str, Any], specific: Mapping[str, Sequence[str]], axis: str, chosen: str) -> None:
    for key, owners in specific.items():
        if raw.get(key) is not None and chosen not in owners:
            raise ConfigError(
                f"config: {key} does not apply to {axis} {chosen!r} (only to {', '.join(owners)}); remove it"
            )


_RANGES = {
    "lr_g": (lambda v: v > 0, "must be > 0"),
    "lr_d": (lambda v: v > 0, "must be > 0"),
    "clip": (lambda v: v > 0, "must be > 0"),
    "gp_weight": (lambda v: v >= 0, "must be >= 0"),
    "label_smoothing": (lambda v: 0 <= v < 0.5, "must be in [0, 0.5)"),
    "beta1": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "beta2": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "d_steps": (lambda v: v >= 1, "must be >= 1"),
    "g_steps": (lambda v: v >= 1, "must be >= 1"),
    "batch_size": (lambda v: v >= 2, "must be >= 2"),
    "latent_dim": (lambda v: v >= 1, "must be >= 1"),
    "width": (lambda v: v >= 4, "must be >= 4"),
    "steps": (lambda v: v >= 1, "must be >= 1"),
    "eval_every": (lambda v: v >= 1, "must be >= 1"),
    "eval_samples": (lambda v: v >= 100, "must be >= 100"),
    "seed": (lambda v: v >= 0, "must be >= 0"),
}


def config_from_dict(raw: Mapping[str, Any]) -> TrainConfig:
    """Validate a mapping of config keys and fill in the variant's defaults."""
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(f"config: unknown key {unknown[0]!r}; known keys are {', '.join(KEYS)}")
    values = {key: _coerce(key, value) for key, value in raw.items()}
    for key, (ok, rule) in _RANGES.items():
        if values.get(key) is not None and not ok(values[key]):
            raise ConfigError(f"config: {key} {rule}, got {values[key]!r}")

    loss = values.get("loss", TrainConfig.loss)
    _check_choice("loss", loss, LOSS_NAMES)
    _check_choice("dataset", values.get("dataset"), DATASET_NAMES)
    _check_choice("arch", values.get("arch"), ARCH_NAMES)
    _check_choice("optimizer", values.get("optimizer"), OPTIMIZER_NAMES)
    _check_applies(values, LOSS_SPECIFIC_KEYS, "loss", loss)

    _fill_defaults(values, _VARIANT_DEFAULTS.get(loss, {}))
    _fill_defaults(values, {"optimizer": "adam", "d_steps": 1})
    _check_applies(values, OPTIMIZER_SPECIFIC_KEYS, "optimizer", values["optimizer"])
    if values["optimizer"] == "adam":
        _fill_defaults(values, _ADAM_BETAS)
    arch = values.get("arch", TrainConfig.arch)
    if arch == "dcgan" and values.get("dataset", TrainConfig.dataset) in POINT_DATASETS:
        raise ConfigError("config: arch 'dcgan' needs an image dataset; use arch mlp for ring8 and grid25")
    _fill_defaults(values, {"width": _ARCH_WIDTH[arch]})
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
