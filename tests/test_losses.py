"""Each loss's maths on tiny hand-checked tensors, and the critic regularisers."""

import math

import pytest
import torch
from torch import nn

from trainables.core.config import config_from_dict
from trainables.core.losses import (
    LOSSES,
    build_loss,
    clip_weights_,
    gan_discriminator,
    gan_generator_minimax,
    gan_generator_nonsaturating,
    gradient_penalty,
)

REAL = torch.tensor([2.0, -1.0])
FAKE = torch.tensor([0.5, -3.0])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_gan_discriminator_is_binary_cross_entropy():
    expected = (softplus(-2.0) + softplus(1.0)) / 2 + (softplus(0.5) + softplus(-3.0)) / 2
    assert gan_discriminator(REAL, FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_label_smoothing_targets_real_at_one_minus_smoothing():
    target = 0.9
    real_term = sum(target * softplus(-r) + (1 - target) * softplus(r) for r in (2.0, -1.0)) / 2
    expected = real_term + (softplus(0.5) + softplus(-3.0)) / 2
    smoothed = build_loss(config_from_dict({"loss": "gan", "label_smoothing": 0.1})).discriminator
    assert smoothed(REAL, FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_generator_losses_nonsaturating_and_minimax():
    assert gan_generator_nonsaturating(FAKE).item() == pytest.approx((softplus(-0.5) + softplus(3.0)) / 2, rel=1e-6)
    # log(1 - sigmoid(f)) = -softplus(f)
    assert gan_generator_minimax(FAKE).item() == pytest.approx(-(softplus(0.5) + softplus(-3.0)) / 2, rel=1e-6)
    assert build_loss(config_from_dict({"loss": "gan", "minimax": True})).generator is gan_generator_minimax


def test_lsgan_hinge_and_wasserstein_values():
    lsgan, hinge, wgan = LOSSES["lsgan"], LOSSES["hinge"], LOSSES["wgan"]
    assert lsgan.discriminator(REAL, FAKE).item() == pytest.approx(0.5 * ((1 + 4) / 2 + (0.25 + 9) / 2))
    assert lsgan.generator(FAKE).item() == pytest.approx(0.5 * ((0.25 + 16) / 2))
    # relu(1 - real): [0, 2]; relu(1 + fake): [1.5, 0]
    assert hinge.discriminator(REAL, FAKE).item() == pytest.approx(1.0 + 0.75)
    assert hinge.generator(FAKE).item() == pytest.approx(1.25)
    assert wgan.discriminator(REAL, FAKE).item() == pytest.approx(-1.25 - 0.5)
    assert wgan.generator(FAKE).item() == pytest.approx(1.25)
    assert (LOSSES["wgan-gp"].discriminator, LOSSES["wgan-gp"].generator) == (wgan.discriminator, wgan.generator)


class LinearCritic(nn.Module):
    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.linear = nn.Linear(weight.numel(), 1)
        with torch.no_grad():
            self.linear.weight.copy_(weight.view(1, -1))

    def forward(self, x, labels=None):
        return self.linear(x.flatten(1)).squeeze(1)


def test_gradient_penalty_of_unit_norm_linear_critic_is_zero():
    torch.manual_seed(0)
    weight = torch.tensor([0.6, 0.0, -0.8, 0.0])
    penalty = gradient_penalty(LinearCritic(weight), torch.randn(16, 1, 2, 2), torch.randn(16, 1, 2, 2), None)
    assert penalty.item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_of_scaled_linear_critic_and_conditional_critic():
    torch.manual_seed(0)
    critic = LinearCritic(torch.tensor([3.0, 0.0, 0.0, 0.0]))  # gradient norm 3 everywhere
    assert gradient_penalty(critic, torch.randn(8, 4), torch.randn(8, 4), None).item() == pytest.approx(4.0)

    class ConditionalLinear(nn.Module):
        # a different unit-norm slope per class: the penalty must still vanish
        def __init__(self):
            super().__init__()
            self.weights = nn.Parameter(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))

        def forward(self, x, labels):
            return (x * self.weights[labels]).sum(1)

    labels = torch.tensor([0, 1, 1, 0])
    assert gradient_penalty(ConditionalLinear(), torch.randn(4, 2), torch.randn(4, 2), labels).item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_flows_gradient_to_the_critic():
    critic = LinearCritic(torch.tensor([2.0, 0.0]))
    gradient_penalty(critic, torch.randn(4, 2), torch.randn(4, 2), None).backward()
    assert critic.linear.weight.grad.abs().sum() > 0


def test_weight_clipping_bounds_every_critic_weight():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    with torch.no_grad():
        for p in critic.parameters():
            p.mul_(10)
    clip_weights_(critic, 0.01)
    for p in critic.parameters():
        assert p.abs().max().item() <= 0.01
