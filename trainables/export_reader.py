"""An exported generator: a folder that any PyTorch program can load and sample from.

The folder holds the generator twice over: ``generator.pt2`` is a ``torch.export`` program
(architecture and weights, batch size free) that runs without gantune's model code, and
``generator.safetensors`` plus ``config.json`` let code that has gantune rebuild the module.
This module reads the folder with torch alone, so downstream code never pulls in Ray, MLflow
or Optuna to use a generator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from trainables.errors import UsageError

EXPORT_FORMAT = 1
PROGRAM_FILE = "generator.pt2"
WEIGHTS_FILE = "generator.safetensors"
CONFIG_FILE = "config.json"
SAMPLES_FILE = "samples.png"
CARD_FILE = "model_card.md"
REQUIRED_FILES = (PROGRAM_FILE, WEIGHTS_FILE, CONFIG_FILE)


class ExportError(UsageError):
    """An export folder that is missing or unreadable, said in one line."""


@dataclass(frozen=True)
class GeneratorSpec:
    """What a caller must know to feed the generator: noise size, labels, and the sample shape."""

    latent_dim: int
    conditional: bool
    num_classes: int
    sample_shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "latent_dim": self.latent_dim,
            "conditional": self.conditional,
            "num_classes": self.num_classes,
            "sample_shape": list(self.sample_shape),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "GeneratorSpec":
        return cls(
            int(raw["latent_dim"]), bool(raw["conditional"]), int(raw["num_classes"]), tuple(raw["sample_shape"])
        )


def read_export_config(folder: str | Path) -> dict[str, Any]:
    """``config.json`` of an export: the training config, the spec, metrics and lineage."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"export: {str(folder)!r} is not a folder; give the --out folder of `gantune export`")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise ExportError(f"export: {str(folder)!r} lacks {', '.join(missing)}; export the generator again")
    raw = _read_json(folder / CONFIG_FILE)
    if not isinstance(raw, dict) or raw.get("format") != EXPORT_FORMAT:
        raise ExportError(f"export: {str(folder)!r} is not a gantune export of format {EXPORT_FORMAT}")
    return raw


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ExportError(f"export: {str(path)!r} is not readable JSON ({err})") from None


class ExportedGenerator:
    """The exported program with the spec that says how to call it."""

    def __init__(self, program: torch.nn.Module, spec: GeneratorSpec, info: dict[str, Any]):
        self.program = program
        self.spec = spec
        self.info = info

    @torch.no_grad()
    def __call__(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.spec.conditional:
            if labels is None:
                raise ExportError("generate: this generator is conditional; give one label per sample")
            return self.program(z, labels.long())
        return self.program(z)

    def generate(self, n: int, labels: Tensor | None = None, seed: int = 0) -> Tensor:
        """``n`` samples from seeded noise; a conditional generator cycles through all classes by default."""
        noise_rng = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.spec.latent_dim, generator=noise_rng)
        if self.spec.conditional and labels is None:
            labels = torch.arange(n) % self.spec.num_classes
        return self(z, labels)


def load_exported(folder: str | Path) -> ExportedGenerator:
    """Load an export folder written by ``gantune export`` (CPU tensors)."""
    info = read_export_config(folder)
    try:
        program = torch.export.load(str(Path(folder) / PROGRAM_FILE)).module()
    except Exception as err:
        raise ExportError(f"export: {str(Path(folder) / PROGRAM_FILE)!r} is not a torch.export program ({err})") from None
    return ExportedGenerator(program, GeneratorSpec.from_dict(info["spec"]), info)


def load_weights(folder: str | Path) -> dict[str, Tensor]:
    """The generator's state dict from ``generator.safetensors``, for code that rebuilds the module."""
    from safetensors.torch import load_file

    read_export_config(folder)
    return load_file(str(Path(folder) / WEIGHTS_FILE))
