"""The metrics each kind of dataset reports, which way each is better, and which a search may optimise.

``trainables.data.datasets`` gives each dataset one of the two catalogues below; every comparison of
metric values in gantune (the search, tracking, promotion, the report) goes through the helpers
at the end of this module, so "better" is written once.

A search optimises its metric faithfully, so an objective must be one that no bad generator can
win: it has to get worse both when samples leave the data (quality) and when modes or classes are
dropped (coverage). ``tests/test_mixture_objectives.py`` and ``tests/test_image_objectives.py``
score a collapsed, an off-data and a faithful "generator" under every objective listed here and
fail if either bad one is not clearly worse.
The other metrics see only one of the two failures (precision rewards collapse, recall and
``kl_modes`` reward blur) and are reported as diagnostics.
"""

from __future__ import annotations

from typing import Callable, Iterable, TypeVar

T = TypeVar("T")

# The k-NN metrics of a sample set against the real one, for both kinds of data (Kynkäänniemi et
# al. 2019, Naeem et al. 2020): in features of the evaluator for images, in the plane for 2-D data.
KNN_METRICS = {"coverage": "max", "density": "max", "precision": "max", "recall": "max"}
IMAGE_METRICS = {
    "fd": "min",
    "kid": "min",
    **KNN_METRICS,
    "is": "max",
    "class_entropy": "max",
    "classes_covered": "max",
    "label_accuracy": "max",
}
# What an image run reports without class predictions: unlabelled data scored in the features of a
# label-free evaluator, or of the user's own feature extractor.
FEATURE_METRICS = {key: IMAGE_METRICS[key] for key in ("fd", "kid", *KNN_METRICS)}
MIXTURE_METRICS = {"js_modes": "min", **KNN_METRICS, "modes_covered": "max", "high_quality": "max", "kl_modes": "min"}
# Objectives first: the first is a preset's default metric.
IMAGE_OBJECTIVES = ("fd", "kid", "coverage")
MIXTURE_OBJECTIVES = ("js_modes", "coverage")


# The worst finite value a metric can take: what a diverged trial reports to the search, so that
# schedulers and samplers rank it last without meeting a NaN.
WORST_VALUE = 1e9


def is_better(value: float, than: float | None, mode: str) -> bool:
    """Whether ``value`` beats ``than`` (``None``: nothing to beat) in direction ``mode``."""
    return than is None or (value < than if mode == "min" else value > than)


def best_first(mode: str, value: Callable[[T], float] = float) -> Callable[[T], float]:
    """A sort key that puts the best of ``mode`` first: ``sorted(items, key=best_first(mode, ...))``."""
    return (lambda item: value(item)) if mode == "min" else (lambda item: -value(item))


def best_of(items: Iterable[T], mode: str, value: Callable[[T], float] = float) -> T:
    """The best item by ``value`` in direction ``mode``."""
    return min(items, key=best_first(mode, value))


def worst_value(mode: str) -> float:
    return WORST_VALUE if mode == "min" else -WORST_VALUE
