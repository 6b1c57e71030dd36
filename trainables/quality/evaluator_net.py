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


# What the head predicts under each ``Recipe.task``: a dataset's classes, an image's quarter turn
# (0, 90, 180 or 270 degrees), or nothing (random features train no head; one output keeps its shape).
ROTATIONS = 4


def head_size(task: str, num_classes: int) -> int:
    return {"classes": num_classes, "rotation": ROTATIONS, "random": 1}[task]


def build_net(shape: tuple[int, ...], outputs: int) -> EvaluatorNet:
    """The evaluator for images of ``shape`` (channels, height, width) with a head of ``outputs``."""
    channels, size, _ = shape
    return EvaluatorNet(channels, size, outputs)


def rotated(images: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Each image turned by its number of quarter turns: the inputs of rotation prediction."""
    out = images.clone()
    for k in range(1, ROTATIONS):
        chosen = turns == k
        out[chosen] = torch.rot90(images[chosen], k, dims=(2, 3))
    return out


@torch.inference_mode()
def logits_and_features(net: EvaluatorNet, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``net`` (in eval mode) over many images in chunks, on the images' device, without autograd."""
    outputs = [net(chunk) for chunk in images.split(CHUNK_SIZE)]
    return torch.cat([logits for logits, _ in outputs]), torch.cat([features for _, features in outputs])


def _task_inputs(task: str, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The images the head sees and what it must predict: classes as they are, or each image under a
    quarter turn (drawn from torch's generator, which ``train_evaluator`` seeds) with the turn as target."""
    if task == "classes":
        return images, labels
    turns = torch.randint(0, ROTATIONS, (images.shape[0],), device=images.device)
    return rotated(images, turns), turns


def accuracy(net: EvaluatorNet, task: str, images: torch.Tensor, labels: torch.Tensor) -> float | None:
    """The head's test accuracy at its task (classes, or quarter turns); None for random features."""
    if task == "random":
        return None
    inputs, targets = _task_inputs(task, images, labels)
    logits, _ = logits_and_features(net, inputs)
    return (logits.argmax(dim=1) == targets).double().mean().item()


def train_evaluator(bundle: DataBundle, device: torch.device, recipe: Recipe) -> tuple[EvaluatorNet, float | None]:
    """Train an evaluator on ``bundle`` from scratch with a seeded recipe at the recipe's task;
    returns the net (eval mode) and its test accuracy at that task.

    The global RNG is forked so that seeding here leaves the caller's random streams untouched.
    """
    bundle = bundle.to(device)
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(recipe.seed)
        net = build_net(bundle.spec.shape, head_size(recipe.task, bundle.spec.num_classes)).to(device)
        if recipe.task != "random":
            _fit(net, bundle, device, recipe)
        net.eval().requires_grad_(False)
        return net, accuracy(net, recipe.task, bundle.test_samples(), bundle.test_y)


def _fit(net: EvaluatorNet, bundle: DataBundle, device: torch.device, recipe: Recipe) -> None:
    optimizer = torch.optim.Adam(net.parameters(), lr=recipe.peak_lr)
    num_train = bundle.train_x.shape[0]
    steps_per_epoch = -(-num_train // recipe.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.peak_lr, total_steps=recipe.epochs * steps_per_epoch)
    order = torch.Generator().manual_seed(recipe.seed)
    net.train()
    for _ in range(recipe.epochs):
        for index in torch.randperm(num_train, generator=order).to(device).split(recipe.batch_size):
            inputs, targets = _task_inputs(recipe.task, *bundle.train_at(index))
            logits, _ = net(inputs)
            loss = F.cross_entropy(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
