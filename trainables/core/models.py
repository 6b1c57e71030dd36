"""The architecture axis: generator and discriminator networks from an architecture body and conditioning.

An architecture contributes only a body: for G, a map from an input vector to a sample; for D,
a feature extractor. ``ARCHITECTURES`` holds each as a spec (its two bodies, default width, and
whether it needs images); adding an architecture is one entry there. A user's own pair of nets
(``arch: package.module:function``, ``trainables.core.user_nets``) takes the place of both bodies. Conditioning (label embedding into G's input, a projection head in D,
Miyato & Koyama 2018) and spectral normalisation wrap any body the same way, so every
architecture supports every loss and both modes without knowing about either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from trainables.core.losses import LOSSES
from trainables.core.spectral import spectral_norm_
from trainables.core.train_config import TrainConfig
from trainables.core.user_nets import build_user_nets, is_import_path
from trainables.data.datasets import spec_of
from trainables.data.files import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE

LEAK = 0.2


class Generator(nn.Module):
    """z, with a learned label embedding appended when conditional, fed through the body."""

    def __init__(self, body: nn.Module, num_classes: int | None):
        super().__init__()
        self.body = body
        self.embed = nn.Embedding(num_classes, num_classes) if num_classes else None

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        return self.body(z)


class Discriminator(nn.Module):
    """A linear head on body features, plus the projection <embed(y), features> when conditional."""

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int | None):
        super().__init__()
        self.features = features
        self.head = nn.Linear(feature_dim, 1)
        self.embed = nn.Embedding(num_classes, feature_dim) if num_classes else None

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        h = self.features(x)
        score = self.head(h).squeeze(1)
        if self.embed is not None:
            score = score + (self.embed(labels) * h).sum(dim=1)
        return score


def _mlp(sizes: list[int], activation: nn.Module) -> list[nn.Module]:
    """Linear layers each followed by ``activation``; one stateless activation module serves them all."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), activation]
    return layers


def mlp_generator_body(in_dim: int, shape: tuple[int, ...], width: int) -> nn.Module:
    """Three hidden ReLU layers; tanh output for images, linear for 2-D points."""
    out_dim = math.prod(shape)
    layers = _mlp([in_dim, width, width, width], nn.ReLU())
    layers.append(nn.Linear(width, out_dim))
    if len(shape) > 1:
        layers += [nn.Tanh(), nn.Unflatten(1, shape)]
    return nn.Sequential(*layers)


def mlp_discriminator_features(shape: tuple[int, ...], width: int) -> tuple[nn.Module, int]:
    """Three hidden LeakyReLU layers; no normalisation, which toy critics do not need."""
    layers = [nn.Flatten(), *_mlp([math.prod(shape), width, width, width], nn.LeakyReLU(LEAK))]
    return nn.Sequential(*layers), width


def _dcgan_geometry(shape: tuple[int, ...]) -> tuple[int, int]:
    """The smallest feature map and the number of 2x resamplings for a square image (Radford et al.'s
    DCGAN doubles a 4 px map four times for 64 px; here the doublings follow the size): as many
    doublings as keep the smallest map at 4 px or more (7 and 2 for 28 px, 4 and 3 for 32 px, 4 and
    4 for 64 px). A size that is not the map times a power of two (18 px: 5 x 4 = 20) is generated
    one map-pixel larger and centre-cropped."""
    size = shape[-1]
    if not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise ValueError(f"dcgan builds {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixel images, got {size}")
    resamplings = (size // 4).bit_length() - 1
    return -(-size // 2**resamplings), resamplings


class CenterCrop(nn.Module):
    """The central ``size`` x ``size`` pixels of a batch of images."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, images: Tensor) -> Tensor:
        top = (images.shape[-2] - self.size) // 2
        left = (images.shape[-1] - self.size) // 2
        return images[..., top:top + self.size, left:left + self.size]


def dcgan_init_(module: nn.Module) -> None:
    """DCGAN's initialisation: N(0, 0.02) convolutions, N(1, 0.02) batch-norm scales."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def dcgan_generator_body(in_dim: int, shape: tuple[int, ...], width: int) -> nn.Module:
    base, upsamplings = _dcgan_geometry(shape)
    channels = width * 2 ** (upsamplings - 1)
    layers: list[nn.Module] = [
        nn.Linear(in_dim, channels * base * base),
        nn.Unflatten(1, (channels, base, base)),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
    ]
    for _ in range(upsamplings - 1):
        layers += [
            nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(channels // 2),
            nn.ReLU(),
        ]
        channels //= 2
    layers += [nn.ConvTranspose2d(channels, shape[0], 4, 2, 1), nn.Tanh()]
    if base * 2**upsamplings != shape[-1]:
        layers.append(CenterCrop(shape[-1]))
    body = nn.Sequential(*layers)
    body.apply(dcgan_init_)
    return body


def dcgan_discriminator_features(shape: tuple[int, ...], width: int, batch_norm: bool) -> tuple[nn.Module, int]:
    """Strided convolutions with LeakyReLU; batch norm after the first unless the critic forbids it."""
    _, downsamplings = _dcgan_geometry(shape)
    layers: list[nn.Module] = [nn.Conv2d(shape[0], width, 4, 2, 1), nn.LeakyReLU(LEAK)]
    channels, side = width, shape[-1] // 2  # a stride-2, kernel-4, padding-1 convolution halves, rounding down
    for _ in range(downsamplings - 1):
        layers.append(nn.Conv2d(channels, channels * 2, 4, 2, 1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(channels * 2))
        layers.append(nn.LeakyReLU(LEAK))
        channels, side = channels * 2, side // 2
    layers.append(nn.Flatten())
    features = nn.Sequential(*layers)
    features.apply(dcgan_init_)
    return features, channels * side * side


@dataclass(frozen=True)
class ArchSpec:
    """An architecture: its generator body, its discriminator features, default width, what data it takes."""

    generator_body: Callable[[int, tuple[int, ...], int], nn.Module]  # (in_dim, sample shape, width)
    # (shape, width, batch_norm): batch_norm says whether the loss and spectral norm allow it
    discriminator_features: Callable[[tuple[int, ...], int, bool], tuple[nn.Module, int]]
    default_width: int
    images_only: bool


ARCHITECTURES = {
    # Toy critics are never normalised, whatever the loss allows.
    "mlp": ArchSpec(mlp_generator_body, lambda shape, width, batch_norm: mlp_discriminator_features(shape, width),
                    default_width=256, images_only=False),
    "dcgan": ArchSpec(dcgan_generator_body, dcgan_discriminator_features, default_width=64, images_only=True),
}


def _num_classes(config: TrainConfig) -> int | None:
    return spec_of(config).num_classes if config.conditional else None


def build_generator(config: TrainConfig) -> nn.Module:
    if is_import_path(config.arch):
        return build_user_nets(config, spec_of(config).shape, spec_of(config).num_classes)[0]
    num_classes = _num_classes(config)
    in_dim = config.latent_dim + (num_classes or 0)
    body = ARCHITECTURES[config.arch].generator_body(in_dim, spec_of(config).shape, config.width)
    return Generator(body, num_classes)


def critic_may_normalise(config: TrainConfig) -> bool:
    """Whether the loss and spectral norm allow batch norm in D (the architecture may still not use it)."""
    regulariser = LOSSES[config.loss].regulariser
    return not (config.spectral_norm or (regulariser is not None and regulariser.penalty is not None))


def build_discriminator(config: TrainConfig) -> nn.Module:
    """Batch norm is dropped where it breaks the critic's constraint: under a gradient penalty
    (the penalty is per sample, batch norm mixes samples) and under spectral norm. (The user's own
    nets keep whatever they hold.)"""
    if is_import_path(config.arch):
        discriminator = build_user_nets(config, spec_of(config).shape, spec_of(config).num_classes)[1]
    else:
        build_features = ARCHITECTURES[config.arch].discriminator_features
        features, feature_dim = build_features(spec_of(config).shape, config.width, critic_may_normalise(config))
        discriminator = Discriminator(features, feature_dim, _num_classes(config))
    if config.spectral_norm:
        for module in list(discriminator.modules()):
            if isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding)):
                spectral_norm_(module)
    return discriminator
