"""The user's own nets: ``arch: package.module:function``.

The function is called as ``function(config, shape, num_classes)`` (the resolved ``TrainConfig``,
one sample's shape such as ``(1, 28, 28)``, the number of classes or 0) and returns
``(generator, discriminator)`` modules. Unconditional nets are called with one argument,
``generator(z)`` with ``z`` of shape (batch, latent_dim) and ``discriminator(x)`` returning one
score per sample; conditional ones get the labels as a second argument. So a plain
``nn.Sequential`` pair works. The wrappers here give them the two-argument call the trainer makes
of every net, and a net whose outputs do not fit the data is one line when it is built.

The module is imported as ``python -m`` would: the working folder comes first on the import path.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any, Callable

import torch
from torch import Tensor, nn

from trainables.errors import ConfigError

IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
CHECK_BATCH = 2


def is_import_path(arch: str) -> bool:
    return bool(IMPORT_PATH.match(arch))


def import_builder(arch: str) -> Callable[..., Any]:
    """The function ``arch`` names; a module that does not import or a missing name is one line."""
    module_name, function_name = arch.split(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # whatever importing the user's module raises
        raise ConfigError(f"config: arch {arch!r}: module {module_name!r} cannot be imported "
                          f"({type(err).__name__}: {err}); put it in the working folder or on PYTHONPATH") from None
    builder = getattr(module, function_name, None)
    if not callable(builder):
        raise ConfigError(f"config: arch {arch!r}: {module_name} has no function {function_name!r}")
    return builder


class UserGenerator(nn.Module):
    """The user's generator, called with the labels only when conditional."""

    def __init__(self, net: nn.Module, conditional: bool):
        super().__init__()
        self.net = net
        self.conditional = conditional

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.net(z, labels) if self.conditional else self.net(z)


class UserDiscriminator(nn.Module):
    """The user's discriminator, called with the labels only when conditional; a (batch, 1) score
    becomes (batch,), as the losses take it."""

    def __init__(self, net: nn.Module, conditional: bool):
        super().__init__()
        self.net = net
        self.conditional = conditional

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        scores = self.net(x, labels) if self.conditional else self.net(x)
        return scores.squeeze(1) if scores.ndim == 2 and scores.shape[1] == 1 else scores


def build_user_nets(config, shape: tuple[int, ...], num_classes: int) -> tuple[UserGenerator, UserDiscriminator]:
    """The user's pair for ``config``, wrapped, after one forward pass of ``CHECK_BATCH`` samples
    shows that G makes samples of ``shape`` and D scores each with one number."""
    arch = config.arch
    built = import_builder(arch)(config, tuple(shape), num_classes)
    if not (isinstance(built, tuple) and len(built) == 2 and all(isinstance(net, nn.Module) for net in built)):
        raise ConfigError(f"config: arch {arch!r} must return (generator, discriminator) torch modules, "
                          f"got {type(built).__name__}")
    generator = UserGenerator(built[0], config.conditional)
    discriminator = UserDiscriminator(built[1], config.conditional)
    z = torch.zeros(CHECK_BATCH, config.latent_dim)
    labels = torch.zeros(CHECK_BATCH, dtype=torch.long) if config.conditional else None
    try:
        with torch.no_grad():
            samples = generator(z, labels)
            scores = discriminator(torch.zeros(CHECK_BATCH, *shape, device=samples.device), labels)
    except Exception as err:  # whatever the user's forward raises on the shapes it will be given
        raise ConfigError(f"config: arch {arch!r}: the nets fail on a batch of {CHECK_BATCH} (latent_dim "
                          f"{config.latent_dim}, samples {tuple(shape)}): {type(err).__name__}: {err}") from None
    if tuple(samples.shape) != (CHECK_BATCH, *shape):
        raise ConfigError(f"config: arch {arch!r}: the generator made {tuple(samples.shape)} for {CHECK_BATCH} "
                          f"samples; the data needs ({CHECK_BATCH}, {', '.join(map(str, shape))})")
    if tuple(scores.shape) != (CHECK_BATCH,):
        raise ConfigError(f"config: arch {arch!r}: the discriminator returned {tuple(scores.shape)} for {CHECK_BATCH} "
                          f"samples; it must return one score per sample, ({CHECK_BATCH},) or ({CHECK_BATCH}, 1)")
    return generator, discriminator
