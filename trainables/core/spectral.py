"""Spectral normalisation (Miyato et al. 2018) as a parametrization that ``torch.func.vmap`` can batch.

A weight is divided by an estimate of its largest singular value, kept up to date by one step of
power iteration per training forward pass. PyTorch's own parametrization writes its iteration
through ``out=`` arguments, which vmap cannot batch, so a cohort could not hold spectrally
normalised critics; this one updates its vectors with ``copy_``, which vmap batches like batch
norm's running statistics. It keeps PyTorch's buffer names (``_u``, ``_v``), its start (random
unit vectors, then 15 iterations) and its arithmetic, so saved critics read the same either way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

START_ITERATIONS = 15
EPS = 1e-12


class SpectralNormalised(nn.Module):
    """``weight / sigma``, with ``sigma`` the power-iteration estimate of the weight matrix's top singular value."""

    def __init__(self, weight: Tensor):
        super().__init__()
        matrix = weight.flatten(1)
        rows, columns = matrix.shape
        self.register_buffer("_u", F.normalize(matrix.new_empty(rows).normal_(0, 1), dim=0, eps=EPS))
        self.register_buffer("_v", F.normalize(matrix.new_empty(columns).normal_(0, 1), dim=0, eps=EPS))
        self._iterate(matrix, START_ITERATIONS)

    @torch.no_grad()
    def _iterate(self, matrix: Tensor, iterations: int) -> None:
        for _ in range(iterations):
            self._u.copy_(F.normalize(torch.mv(matrix, self._v), dim=0, eps=EPS))
            self._v.copy_(F.normalize(torch.mv(matrix.H, self._u), dim=0, eps=EPS))

    def forward(self, weight: Tensor) -> Tensor:
        matrix = weight.flatten(1)
        if self.training:
            self._iterate(matrix, 1)
        # Copies, so that the next forward's in-place update leaves this one's backward intact.
        u, v = self._u.clone(), self._v.clone()
        return weight / torch.vdot(u, torch.mv(matrix, v))


def spectral_norm_(module: nn.Module) -> None:
    """Normalise ``module.weight`` (a Linear, Conv2d or Embedding weight: output rows first) in place."""
    parametrize.register_parametrization(module, "weight", SpectralNormalised(module.weight))
