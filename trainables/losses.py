"""GAN losses as small pure functions of the discriminator's outputs.

A loss is a pair: the discriminator (critic) loss of real and fake logits, and the generator
loss of fake logits. Regularisers that act on the critic itself (the gradient penalty of
WGAN-GP, the weight clipping of WGAN) live here too, as separate functions the trainer
composes by config; no loss knows about architectures or about other losses.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.config import TrainConfig


class LossPair(NamedTuple):
    discriminator: Callable[[Tensor, Tensor], Tensor]
    generator: Callable[[Tensor], Tensor]


def gan_discriminator(real: Tensor, fake: Tensor, real_target: float = 1.0) -> Tensor:
    """Binary cross-entropy on logits; ``real_target`` < 1 is one-sided label smoothing."""
    real_term = real_target * F.softplus(-real) + (1.0 - real_target) * F.softplus(real)
    return real_term.mean() + F.softplus(fake).mean()


def gan_generator_nonsaturating(fake: Tensor) -> Tensor:
    """-log D(G(z)): strong gradients while D still rejects the fakes."""
    return F.softplus(-fake).mean()


def gan_generator_minimax(fake: Tensor) -> Tensor:
    """log(1 - D(G(z))), the original minimax objective (saturates early in training)."""
    return -F.softplus(fake).mean()


def lsgan_discriminator(real: Tensor, fake: Tensor) -> Tensor:
    return 0.5 * ((real - 1.0).pow(2).mean() + fake.pow(2).mean())


def lsgan_generator(fake: Tensor) -> Tensor:
    return 0.5 * (fake - 1.0).pow(2).mean()


def hinge_discriminator(real: Tensor, fake: Tensor) -> Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def hinge_generator(fake: Tensor) -> Tensor:
    return -fake.mean()


def wasserstein_critic(real: Tensor, fake: Tensor) -> Tensor:
    """The negated Wasserstein-1 estimate E[D(fake)] - E[D(real)], which the critic minimises."""
    return fake.mean() - real.mean()


LOSSES = {
    "gan": LossPair(gan_discriminator, gan_generator_nonsaturating),
    "lsgan": LossPair(lsgan_discriminator, lsgan_generator),
    "hinge": LossPair(hinge_discriminator, hinge_generator),
    "wgan": LossPair(wasserstein_critic, hinge_generator),
    "wgan-gp": LossPair(wasserstein_critic, hinge_generator),
}


def build_loss(config: TrainConfig) -> LossPair:
    """The loss pair of a config, with the ``gan`` options (minimax, label smoothing) applied."""
    pair = LOSSES[config.loss]
    if config.minimax:
        pair = pair._replace(generator=gan_generator_minimax)
    if config.label_smoothing:
        pair = pair._replace(discriminator=partial(gan_discriminator, real_target=1.0 - config.label_smoothing))
    return pair


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, labels: Tensor | None) -> Tensor:
    """E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates of real and fake samples.

    The labels of a conditional critic stay those of the real batch: the penalty constrains
    the critic's slope in x for each class.
    """
    mix = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    interpolates = (mix * real + (1.0 - mix) * fake.detach()).requires_grad_(True)
    scores = critic(interpolates, labels)
    (grads,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
    return (grads.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


@torch.no_grad()
def clip_weights_(critic: nn.Module, clip: float) -> None:
    """WGAN's Lipschitz constraint: every critic parameter clamped to [-clip, clip] in place."""
    for parameter in critic.parameters():
        parameter.clamp_(-clip, clip)
