"""The dataset axis: each dataset as a spec of its shape, classes, loader, evaluator and metrics.

Everything that differs between datasets is read from here: whether samples are images (scored
by a trained evaluator, drawn as a grid) or 2-D points (scored against the known mixture, drawn
as a scatter), the metrics a run reports and which way each is better, and which of them a search
may optimise. Adding a dataset is one entry in ``DATASETS``.
"""

from __future__ import annotations

from trainables.data.loading import grid25, load, ring8
from trainables.data.records import DataBundle, DatasetSpec, Mixture, Recipe
from trainables.errors import ConfigError
from trainables.quality.objectives import IMAGE_METRICS, IMAGE_OBJECTIVES, MIXTURE_METRICS, MIXTURE_OBJECTIVES


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
    return load(dataset_spec(name), data_root)
