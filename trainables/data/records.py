"""The records the data and quality jobs pass around: a dataset's spec, its tensors, a mixture of
Gaussians, and the recipe an evaluator is trained by. Plain types with no behaviour beyond their
own fields, so every other module can import them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch


@dataclass(frozen=True)
class Mixture:
    """A mixture of isotropic Gaussians with equal weights."""

    centers: torch.Tensor  # (modes, 2)
    std: float

    @property
    def num_modes(self) -> int:
        return self.centers.shape[0]

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        modes = torch.randint(0, self.num_modes, (n,), generator=generator)
        noise = torch.randn(n, 2, generator=generator) * self.std
        return self.centers[modes] + noise, modes


def as_samples(x: torch.Tensor) -> torch.Tensor:
    """What nets and metrics take: uint8 pixels scaled to [-1, 1] (the generator's tanh range);
    2-D points, already float, as they are."""
    return x.float().div_(127.5).sub_(1.0) if x.dtype == torch.uint8 else x


@dataclass
class DataBundle:
    """A dataset as tensors: ``*_x`` are uint8 pixels (one byte a pixel, converted a batch at a
    time by ``as_samples``) or float32 points; ``*_y`` are class or mode indices."""

    spec: DatasetSpec
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    def to(self, device: torch.device) -> "DataBundle":
        moved = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "test_x", "test_y")}
        return DataBundle(self.spec, **moved)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.train_x, self.train_y, self.test_x, self.test_y))

    def train_at(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training samples and labels at ``index``."""
        return as_samples(self.train_x[index]), self.train_y[index]

    def test_samples(self) -> torch.Tensor:
        return as_samples(self.test_x)

    def batch(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A random batch drawn with replacement on the data's device, with no host sync."""
        index = torch.randint(0, self.train_x.shape[0], (batch_size,), device=self.train_x.device,
                              generator=generator)
        return self.train_at(index)


@dataclass(frozen=True)
class Recipe:
    """How an evaluator is trained; every field enters the cache key, so changing one retrains.

    ``architecture`` names the layout of ``EvaluatorNet``: change it together with the class.
    ``task`` is what it learns: the ``classes`` of labelled data, or, without labels, the
    ``rotation`` of each image (Gidaris et al. 2018); ``random`` leaves it at its seeded
    initialisation (Naeem et al. 2020 found random embeddings usable for k-NN metrics).
    """

    architecture: str = "lenet-pool-bn-16-32-128"
    task: str = "classes"
    epochs: int = 2
    batch_size: int = 128
    peak_lr: float = 3e-3
    seed: int = 0


@dataclass(frozen=True)
class DatasetSpec:
    """An image dataset has an evaluator recipe and a torchvision class or the user's files; a 2-D
    one has a mixture.

    A dataset read from files (``from_files``) has its shape and classes only once a config names
    them (``trainables.data.datasets.spec_of``); before, its shape is empty and its metrics are
    every image metric it may report."""

    name: str
    shape: tuple[int, ...]  # one sample's shape: (channels, height, width) or (2,)
    num_classes: int  # classes of an image dataset (0: unlabelled), modes of a mixture
    metrics: Mapping[str, str]  # every metric a run reports -> "min" or "max", the better way
    objectives: tuple[str, ...]  # the metrics a search may optimise; the first is a preset's default
    torchvision: str | None = None
    recipe: Recipe | None = None
    mixture: Mixture | None = None
    from_files: bool = False

    @property
    def is_image(self) -> bool:
        return self.mixture is None
