"""The metrics each kind of dataset reports, which way each is better, and which a search may optimise.

A search optimises its metric faithfully, so an objective must be one that no bad generator can
win: it has to get worse both when samples leave the data (quality) and when modes or classes are
dropped (coverage). ``tests/test_mixture_objectives.py`` and ``tests/test_image_objectives.py``
score a collapsed, an off-data and a faithful "generator" under every objective listed here and
fail if either bad one is not clearly worse.
The other metrics see only one of the two failures (precision rewards collapse, recall and
``kl_modes`` reward blur) and are reported as diagnostics.
"""

from __future__ import annotations

IMAGE_METRICS = {
    "fd": "min",
    "kid": "min",
    "coverage": "max",
    "density": "max",
    "precision": "max",
    "recall": "max",
    "is": "max",
    "class_entropy": "max",
    "classes_covered": "max",
    "label_accuracy": "max",
}
MIXTURE_METRICS = {
    "js_modes": "min",
    "coverage": "max",
    "density": "max",
    "precision": "max",
    "recall": "max",
    "modes_covered": "max",
    "high_quality": "max",
    "kl_modes": "min",
}
# Every metric either kind reports; the shared names (precision, coverage, ...) agree on direction.
METRIC_DIRECTIONS = {**IMAGE_METRICS, **MIXTURE_METRICS}
# Objectives first: the first is a preset's default metric.
IMAGE_OBJECTIVES = ("fd", "kid", "coverage")
MIXTURE_OBJECTIVES = ("js_modes", "coverage")


def is_better(value: float, than: float | None, mode: str) -> bool:
    """Whether ``value`` beats ``than`` (``None``: nothing to beat) in direction ``mode``."""
    return than is None or (value < than if mode == "min" else value > than)
