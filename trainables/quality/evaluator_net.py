"""The evaluator's network and its training: a small CNN classifier of real images.

Inception features need weights that cannot be fetched offline and describe ImageNet, not
digits; a LeNet-style net trained here on the dataset itself trains in one to two minutes on two
CPU cores and gives features (``FEATURE_DIM`` wide) that separate what a generator gets wrong.
``trainables.quality.evaluator_cache`` trains it once per dataset and keeps it on disk.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainables.data.records import DataBundle, Recipe

FEATURE_DIM = 128
# Rows per forward pass when scoring many images: small enough for the activations to stay in
# cache (500 runs a third faster than 2000 on a CPU), and a bound on memory.
CHUNK_SIZE = 500


class EvaluatorNet(nn.Module):
    """Two conv-pool-BN-ReLU blocks, a ``FEATURE_DIM`` penultimate layer, a linear classifier.

    Pooling comes straight after each convolution so that normalisation and ReLU touch a
    quarter of the activations: on a CPU those memory-bound layers otherwise cost as much as
    the convolutions themselves.
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 16, 5, padding=2, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 5, padding=2, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * (image_size // 4) ** 2, FEATURE_DIM),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and penultimate features of images in [-1, 1]."""
        features = self.body(images)
        return self.head(features), features


def build_net(shape: tuple[int, ...], num_classes: int) -> EvaluatorNet:
    """The evaluator for images of ``shape`` (channels, height, width) with ``num_classes`` classes."""
    channels, size, _ = shape
    return EvaluatorNet(channels, size, num_classes)


@torch.inference_mode()
def logits_and_features(net: EvaluatorNet, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``net`` (in eval mode) over many images in chunks, on the images' device, without autograd."""
    outputs = [net(chunk) for chunk in images.split(CHUNK_SIZE)]
    return torch.cat([logits for logits, _ in outputs]), torch.cat([features for _, features in outputs])


def accuracy(net: EvaluatorNet, images: torch.Tensor, labels: torch.Tensor) -> float:
    logits, _ = logits_and_features(net, images)
    return (logits.argmax(dim=1) == labels).double().mean().item()


def train_evaluator(bundle: DataBundle, device: torch.device, recipe: Recipe) -> tuple[EvaluatorNet, float]:
    """Train an evaluator on ``bundle`` from scratch with a seeded recipe; returns the net (eval mode)
    and its test accuracy.

    The global RNG is forked so that seeding here leaves the caller's random streams untouched.
    """
    bundle = bundle.to(device)
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(recipe.seed)
        net = build_net(bundle.spec.shape, bundle.spec.num_classes).to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=recipe.peak_lr)
        num_train = bundle.train_x.shape[0]
        steps_per_epoch = -(-num_train // recipe.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, recipe.peak_lr, total_steps=recipe.epochs * steps_per_epoch
        )
        order = torch.Generator().manual_seed(recipe.seed)
        net.train()
        for _ in range(recipe.epochs):
            for index in torch.randperm(num_train, generator=order).to(device).split(recipe.batch_size):
                logits, _ = net(bundle.train_x[index])
                loss = F.cross_entropy(logits, bundle.train_y[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    net.eval().requires_grad_(False)
    return net, accuracy(net, bundle.test_x, bundle.test_y)
