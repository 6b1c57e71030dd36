"""``mixed_precision``: the training step in float32 (``fp32``), or under bfloat16 autocast (``bf16``).

Under ``bf16`` the forward passes of a training step run their matmuls and convolutions in
bfloat16 (``torch.autocast``); weights, gradients and optimizer state stay float32, so a
checkpoint is the same whatever the precision and a run may change it on resume. bfloat16 keeps
float32's exponent range, so no loss scaling is needed. Evaluation and sampling always run in
float32: a metric must not move with the precision a trial trained in.

Autocast's cache of cast weights is off: a cached cast would be captured into a CUDA graph and
replayed stale after the optimizer changed the weights.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

MIXED_PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def training_autocast(device: torch.device, mixed_precision: str) -> AbstractContextManager:
    """The context a training step's forward passes run in: bf16 autocast, or nothing for ``fp32``."""
    dtype = MIXED_PRECISIONS[mixed_precision]
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=False)
