"""The dataset axis: each dataset as a spec of its shape, classes, loader, evaluator and metrics.

Everything that differs between datasets is read from here: whether samples are images (scored
by a trained evaluator, drawn as a grid) or 2-D points (scored against the known mixture, drawn
as a scatter), the metrics a run reports and which way each is better, and which of them a search
may optimise. Adding a dataset is one entry in ``DATASETS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from trainables.data import DataBundle, Mixture, grid25, load_images, load_mixture, ring8
from trainables.errors import ConfigError
from trainables.evaluator_net import Recipe
from trainables.objectives import IMAGE_METRICS, IMAGE_OBJECTIVES, MIXTURE_METRICS, MIXTURE_OBJECTIVES


@dataclass(frozen=True)
class DatasetSpec:
    """An image dataset has a torchvision class and an evaluator recipe; a 2-D one has a mixture."""

    name: str
    shape: tuple[int, ...]  # one sample's shape: (channels, height, width) or (2,)
    num_classes: int  # classes of an image dataset, modes of a mixture
    metrics: Mapping[str, str]  # every metric a run reports -> "min" or "max", the better way
    objectives: tuple[str, ...]  # the metrics a search may optimise; the first is a preset's default
    torchvision: str | None = None
    recipe: Recipe | None = None
    mixture: Mixture | None = None

    @property
    def is_image(self) -> bool:
        return self.mixture is None

    def load(self, data_root: str | None = None) -> DataBundle:
        """The dataset on the CPU; move it with ``DataBundle.to``."""
        return load_images(self, data_root) if self.is_image else load_mixture(self)


def _image(name: str, torchvision: str, shape: tuple[int, ...], recipe: Recipe) -> DatasetSpec:
    return DatasetSpec(name, shape, 10, IMAGE_METRICS, IMAGE_OBJECTIVES, torchvision=torchvision, recipe=recipe)


def _points(name: str, mixture: Mixture) -> DatasetSpec:
    return DatasetSpec(name, (2,), mixture.num_modes, MIXTURE_METRICS, MIXTURE_OBJECTIVES, mixture=mixture)


# Evaluator recipes: two epochs with a one-cycle schedule reach 99.4% on MNIST; the harder
# datasets need more.
DATASETS = {
    spec.name: spec
    for spec in (
        _image("mnist", "MNIST", (1, 28, 28), Recipe()),
        _image("fashion_mnist", "FashionMNIST", (1, 28, 28), Recipe(epochs=5)),
        _image("cifar10", "CIFAR10", (3, 32, 32), Recipe(epochs=10)),
        _points("ring8", ring8()),
        _points("grid25", grid25()),
    )
}
IMAGE_DATASETS = tuple(name for name, spec in DATASETS.items() if spec.is_image)


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of a dataset by its config name; an unknown name is one line listing the known ones."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def image_dataset(name: str) -> DatasetSpec:
    """The spec of an image dataset (the only kind with an evaluator); anything else is one line."""
    if name not in DATASETS or not DATASETS[name].is_image:
        kind = "is unknown" if name not in DATASETS else "is a 2-D dataset, scored by its mixture modes without an evaluator"
        raise ConfigError(f"evaluator: dataset {name!r} {kind}; choose one of {', '.join(IMAGE_DATASETS)}")
    return DATASETS[name]


def load_dataset(name: str, data_root: str | None = None) -> DataBundle:
    """Load a dataset by its config name onto the CPU; move it with ``DataBundle.to``."""
    return dataset_spec(name).load(data_root)
