"""Nets as a user writes them for ``arch: tests.own_nets:FUNCTION``: plain ``nn.Sequential`` pairs."""

from __future__ import annotations

import math

from torch import nn


def sequential_pair(config, shape: tuple[int, ...], num_classes: int) -> tuple[nn.Module, nn.Module]:
    """An unconditional MLP pair for samples of any ``shape``: D scores each sample with one number."""
    size = math.prod(shape)
    generator = nn.Sequential(nn.Linear(config.latent_dim, 64), nn.ReLU(), nn.Linear(64, size), nn.Unflatten(1, shape))
    discriminator = nn.Sequential(nn.Flatten(), nn.Linear(size, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
    return generator, discriminator


def wrong_shape_pair(config, shape: tuple[int, ...], num_classes: int) -> tuple[nn.Module, nn.Module]:
    """A generator that makes samples one value too wide for the data."""
    generator = nn.Sequential(nn.Linear(config.latent_dim, math.prod(shape) + 1))
    return generator, sequential_pair(config, shape, num_classes)[1]
