"""The optimizer axis: each optimizer as a spec of how to build it and the keys only it reads.

Adam's betas mean nothing to RMSprop, so they apply only where Adam is chosen; config validation
and the search space read ``OPTIMIZERS`` to know that. Adding an optimizer is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import torch

from trainables.core.train_config import TrainConfig


@dataclass(frozen=True)
class OptimizerSpec:
    """``build(parameters, lr, config, capturable)`` and the keys only this optimizer reads, with defaults."""

    build: Callable[..., torch.optim.Optimizer]
    options: Mapping[str, Any] = field(default_factory=dict)


def _adam(parameters: Iterable, lr: float, config: TrainConfig, capturable: bool) -> torch.optim.Optimizer:
    return torch.optim.Adam(parameters, lr=lr, betas=(config.beta1, config.beta2), capturable=capturable)


def _rmsprop(parameters: Iterable, lr: float, config: TrainConfig, capturable: bool) -> torch.optim.Optimizer:
    return torch.optim.RMSprop(parameters, lr=lr, capturable=capturable)


OPTIMIZERS = {
    # DCGAN's beta1 0.5 (Radford et al. 2016) with Kingma & Ba's beta2.
    "adam": OptimizerSpec(_adam, options={"beta1": 0.5, "beta2": 0.999}),
    "rmsprop": OptimizerSpec(_rmsprop),
}


def build_optimizer(config: TrainConfig, parameters: Iterable, lr: float, capturable: bool) -> torch.optim.Optimizer:
    """``capturable`` keeps the optimizer's step counters on the device, as a CUDA graph needs."""
    return OPTIMIZERS[config.optimizer].build(parameters, lr, config, capturable)
