"""The trainer's config as a typed record: every key with its type and default, nothing else.

A leaf module: the axis specs (losses, models, optimizers) take a ``TrainConfig`` and
``trainables.core.config`` validates one against those specs, so the record lives apart from both.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist"
    data_root: str | None = None
    # The user's own images (dataset folder or array) only; filled in from the files when unset.
    image_size: int | None = None
    channels: int | None = None
    num_classes: int | None = None
    # Image datasets: the user's own feature extractor for the image metrics (a .pt2 or .pt file).
    evaluator: str | None = None
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
    mixed_precision: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
