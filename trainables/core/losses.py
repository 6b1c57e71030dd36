"""The loss axis: each GAN loss as a spec, built from small pure functions of D's outputs.

A loss is a pair: the discriminator (critic) loss of real and fake logits, and the generator
loss of fake logits. A ``LossSpec`` adds what else the loss decides: the config keys that only
it reads (``minimax`` for ``gan``, ``clip`` for ``wgan`` ...) with their defaults, the defaults it
changes for shared keys (WGAN's RMSprop and five critic steps), and the regulariser that keeps
its critic Lipschitz. Config validation, the search space and the trainer all read ``LOSSES``;
adding a loss is one entry there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Mapping, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.core.train_config import TrainConfig


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


def interpolation_weights(real: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One uniform weight per sample for mixing real and fake samples, broadcastable over a sample."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    return torch.rand(shape, device=real.device, dtype=real.dtype, generator=generator)


def slope_penalty(grads: Tensor) -> Tensor:
    """E[(||g||_2 - 1)^2] over a batch of per-sample input gradients ``grads``."""
    return (grads.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, labels: Tensor | None) -> Tensor:
    """E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates of real and fake samples.

    The labels of a conditional critic stay those of the real batch: the penalty constrains
    the critic's slope in x for each class.
    """
    mix = interpolation_weights(real)
    interpolates = (mix * real + (1.0 - mix) * fake.detach()).requires_grad_(True)
    scores = critic(interpolates, labels)
    (grads,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
    return slope_penalty(grads)


@torch.no_grad()
def clip_weights_(critic: nn.Module, clip: float) -> None:
    """WGAN's Lipschitz constraint: every critic parameter clamped to [-clip, clip] in place."""
    for parameter in critic.parameters():
        parameter.clamp_(-clip, clip)


@dataclass(frozen=True)
class CriticRegulariser:
    """What keeps a Wasserstein critic 1-Lipschitz, at a strength read from the config key ``key``.

    A ``penalty`` (critic, real, fake, labels) -> Tensor is added to the critic's loss times the
    strength; a ``constraint`` (critic, strength) is applied after each critic step. A penalty is
    computed per sample, which batch norm in the critic would break, so D drops batch norm under one.
    """

    key: str
    default: float
    penalty: Callable[..., Tensor] | None = None
    constraint: Callable[[nn.Module, float], None] | None = None


GRADIENT_PENALTY = CriticRegulariser("gp_weight", 10.0, penalty=gradient_penalty)  # Gulrajani et al. 2017
WEIGHT_CLIPPING = CriticRegulariser("clip", 0.01, constraint=clip_weights_)  # Arjovsky et al. 2017


def _gan_options(pair: LossPair, config: TrainConfig) -> LossPair:
    """The ``gan`` loss's options: the minimax generator, and one-sided label smoothing."""
    if config.minimax:
        pair = pair._replace(generator=gan_generator_minimax)
    if config.label_smoothing:
        pair = pair._replace(discriminator=partial(gan_discriminator, real_target=1.0 - config.label_smoothing))
    return pair


@dataclass(frozen=True)
class LossSpec:
    """One loss: its pair, the keys only it reads (with defaults), and its critic regulariser."""

    discriminator: Callable[[Tensor, Tensor], Tensor]
    generator: Callable[[Tensor], Tensor]
    options: Mapping[str, Any] = field(default_factory=dict)  # keys only this loss reads -> default
    defaults: Mapping[str, Any] = field(default_factory=dict)  # shared keys it trains with by default
    regulariser: CriticRegulariser | None = None
    configure: Callable[[LossPair, TrainConfig], LossPair] | None = None  # applies ``options``

    @property
    def own_keys(self) -> dict[str, Any]:
        """Every key that applies to this loss alone, with its default (the regulariser's strength too)."""
        strength = {self.regulariser.key: self.regulariser.default} if self.regulariser else {}
        return {**self.options, **strength}


LOSSES = {
    # Goodfellow et al. 2014; the non-saturating generator unless ``minimax``.
    "gan": LossSpec(gan_discriminator, gan_generator_nonsaturating,
                    options={"minimax": False, "label_smoothing": 0.0}, configure=_gan_options),
    "lsgan": LossSpec(lsgan_discriminator, lsgan_generator),  # Mao et al. 2017
    "hinge": LossSpec(hinge_discriminator, hinge_generator),  # Lim & Ye 2017, Miyato et al. 2018
    # Arjovsky et al. 2017: RMSprop and five critic steps per generator step.
    "wgan": LossSpec(wasserstein_critic, hinge_generator, defaults={"optimizer": "rmsprop", "d_steps": 5},
                     regulariser=WEIGHT_CLIPPING),
    # Gulrajani et al. 2017: Adam and five critic steps.
    "wgan-gp": LossSpec(wasserstein_critic, hinge_generator, defaults={"d_steps": 5}, regulariser=GRADIENT_PENALTY),
}


def build_loss(config: TrainConfig) -> LossPair:
    """The loss pair of a config, with the loss's options applied."""
    spec = LOSSES[config.loss]
    pair = LossPair(spec.discriminator, spec.generator)
    return spec.configure(pair, config) if spec.configure else pair
