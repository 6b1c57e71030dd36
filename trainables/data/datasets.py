"""The dataset axis: each dataset as a spec of its shape, classes, loader, evaluator and metrics.

Everything that differs between datasets is read from here: whether samples are images (scored
by a trained evaluator, drawn as a grid) or 2-D points (scored against the known mixture, drawn
as a scatter), the metrics a run reports and which way each is better, and which of them a search
may optimise. Adding a dataset is one entry in ``DATASETS``.

``folder`` and ``array`` are the user's own images (``trainables.data.files``): their shape,
classes and metrics are known once the files are read, which ``resolve_spec`` does.
"""

from __future__ import annotations

import dataclasses
import math

from trainables.data.loading import file_images, grid25, load, ring8
from trainables.data.records import DataBundle, DatasetSpec, Mixture, Recipe
from trainables.errors import ConfigError
from trainables.quality.objectives import (
    FEATURE_METRICS,
    IMAGE_METRICS,
    IMAGE_OBJECTIVES,
    MIXTURE_METRICS,
    MIXTURE_OBJECTIVES,
)


def _image(name: str, torchvision: str, shape: tuple[int, ...], recipe: Recipe) -> DatasetSpec:
    return DatasetSpec(name, shape, 10, IMAGE_METRICS, IMAGE_OBJECTIVES, torchvision=torchvision, recipe=recipe)


def _points(name: str, mixture: Mixture) -> DatasetSpec:
    return DatasetSpec(name, (2,), mixture.num_modes, MIXTURE_METRICS, MIXTURE_OBJECTIVES, mixture=mixture)


def _files(name: str) -> DatasetSpec:
    return DatasetSpec(name, (), 0, IMAGE_METRICS, IMAGE_OBJECTIVES, recipe=Recipe(), from_files=True)


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
        _files("folder"),
        _files("array"),
    )
}
IMAGE_DATASETS = tuple(name for name, spec in DATASETS.items() if spec.is_image)
FILE_DATASETS = tuple(name for name, spec in DATASETS.items() if spec.from_files)
# The evaluator of the user's images learns for about as many steps as MNIST's two epochs take
# (938, which reach 99.4 %), in two to thirty passes over the images.
FILE_EVALUATOR_STEPS = 1000
FILE_EVALUATOR_EPOCHS = (2, 30)
# What the evaluator of unlabelled images learns (trainables.data.records.Recipe.task).
LABEL_FREE_TASK = "rotation"


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


def spec_of(config) -> DatasetSpec:
    """The spec of a config's dataset: for the user's files, its shape, classes and metrics as the
    config's ``image_size``, ``channels`` and ``num_classes`` give them (``resolve_files`` fills them in).
    Under the user's own ``evaluator`` (features, no classifier) no class metric is reported."""
    spec = dataset_spec(config.dataset)
    if not spec.from_files:
        return dataclasses.replace(spec, metrics=FEATURE_METRICS) if config.evaluator else spec
    if None in (config.image_size, config.channels, config.num_classes):
        raise ConfigError(f"config: dataset {config.dataset} has no image_size, channels and num_classes yet; "
                          "resolve the config against its files first")
    recipe = dataclasses.replace(spec.recipe, task="classes" if config.num_classes else LABEL_FREE_TASK)
    labelled = config.num_classes and not config.evaluator
    return dataclasses.replace(spec, shape=(config.channels, config.image_size, config.image_size),
                               num_classes=config.num_classes, metrics=IMAGE_METRICS if labelled else FEATURE_METRICS,
                               recipe=recipe)


def resolve_files(config):
    """The config with what the user's files say filled in: their ``image_size`` and ``channels`` (when
    unset) and their ``num_classes`` (0 without class folders or labels). A config of a built-in
    dataset comes back as it is. Conditioning on data without two classes is one line."""
    if not dataset_spec(config.dataset).from_files:
        return config
    if None not in (config.image_size, config.channels, config.num_classes):
        return config  # resolved already (a trial's or a checkpoint's config)
    found = file_images(config.dataset, config.data_root, config.image_size, config.channels)
    classes = len(found.classes)
    if config.num_classes is not None and config.num_classes != classes:
        raise ConfigError(f"config: num_classes is {config.num_classes} but {config.data_root!r} holds {classes} "
                          "classes; remove num_classes (it is read from the data)")
    if config.conditional and classes < 2:
        held = "no labels (a flat folder, or an array without labels)" if not classes else "one class"
        raise ConfigError(f"config: conditional needs two or more classes, and {config.data_root!r} has {held}; "
                          "put the images in one subfolder per class, or set conditional: false")
    channels, size = found.images.shape[1], found.images.shape[-1]
    return dataclasses.replace(config, image_size=size, channels=channels, num_classes=classes)


def evaluator_recipe(data: DataBundle) -> Recipe:
    """How the evaluator of an image dataset is trained: a built-in dataset's own recipe; for the
    user's images, as many epochs as make ``FILE_EVALUATOR_STEPS`` steps, within ``FILE_EVALUATOR_EPOCHS``."""
    recipe = data.spec.recipe
    if not data.spec.from_files:
        return recipe
    fewest, most = FILE_EVALUATOR_EPOCHS
    epochs = math.ceil(FILE_EVALUATOR_STEPS * recipe.batch_size / data.train_x.shape[0])
    return dataclasses.replace(recipe, epochs=min(most, max(fewest, epochs)))


def load_data(config) -> DataBundle:
    """A resolved config's dataset on the CPU; move it with ``DataBundle.to``."""
    return load(spec_of(config), config.data_root, config.image_size, config.channels)


def load_dataset(name: str, data_root: str | None = None) -> DataBundle:
    """Load a built-in dataset by its config name onto the CPU; move it with ``DataBundle.to``."""
    return load(dataset_spec(name), data_root)
