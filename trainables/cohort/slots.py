"""What a cohort keeps of each slot: the shape slots must share, a slot's own state, its reports.

A slot's random stream is a private generator started at the state a new single-trial ``Trainer``
would draw from, so a slot draws exactly what that trainer would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from trainables.core.config import TrainConfig
from trainables.core.losses import LossPair
from trainables.core.models import build_discriminator

# What every slot of a cohort shares: the nets' shapes (and so the stacked weights), the batch,
# the device and its precision, and the evaluation schedule, whose boundaries are where slots report.
SHAPE_KEYS = ("dataset", "data_root", "image_size", "channels", "num_classes", "evaluator", "arch", "width",
              "batch_size", "latent_dim", "conditional", "spectral_norm", "device", "cuda_graph", "mixed_precision",
              "eval_every", "eval_samples")


def cohort_shape(config: TrainConfig) -> tuple:
    """The key trials must share to train in one cohort: the ``SHAPE_KEYS`` and D's tensors, which
    other axes can change (a gradient penalty takes batch norm out of a DCGAN critic)."""
    with torch.device("meta"):
        critic = build_discriminator(config)
    return (*(getattr(config, key) for key in SHAPE_KEYS),
            tuple((name, tuple(value.shape)) for name, value in critic.state_dict().items()))


@dataclass
class SlotReport:
    """A slot's report at an evaluation boundary; ``ended`` when the trial completed or diverged."""

    slot: int
    config: TrainConfig
    report: dict[str, Any]
    ended: bool


@dataclass
class Slot:
    """A live slot's own state beside its stacked tensors."""

    config: TrainConfig
    loss: LossPair
    rng: torch.Generator
    step: int
    last_report: dict[str, Any]
    penalty_weight: float
    clipped: bool
    ended: bool = False
    interval_steps: int = 0
    interval_started: float = field(default_factory=time.perf_counter)


def stream_of_new_trainer(device: torch.device) -> torch.Generator:
    """A private generator at the default generator's state: the stream a just-built ``Trainer`` draws from."""
    rng = torch.Generator(device=device)
    rng.set_state(torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state())
    return rng
