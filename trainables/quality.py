"""Quality of generated samples, scored the same way at every evaluation interval of a run.

``build_quality`` does the expensive part once per run (the evaluator, the real test set's
feature statistics); ``Quality.evaluate`` then scores a batch of samples in a few seconds on a
CPU and returns plain Python numbers, ready for JSON, Tune and MLflow.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import torch

from trainables import metrics
from trainables.data import DataBundle, Mixture
from trainables.evaluator import Evaluator, load_or_train_evaluator, logits_and_features

# Test points that define the real manifold of a 2-D mixture: 200 per grid25 mode is dense enough
# for k-NN radii, and evaluation cost grows with this times the number of samples.
MIXTURE_MANIFOLD_POINTS = 5000


class Quality(ABC):
    """Scores samples of one dataset; ``evaluator_hash`` names the evaluator behind image scores."""

    evaluator_hash: str | None = None

    @abstractmethod
    def evaluate(self, samples: torch.Tensor, requested_labels: torch.Tensor | None = None) -> dict:
        """Metrics of ``samples`` (any device); ``requested_labels`` are the labels a conditional
        generator was asked for."""


class ImageQuality(Quality):
    """Evaluator-based scores: ``fd`` against the real test set, ``is``, and collapse signals."""

    def __init__(self, evaluator: Evaluator, test_images: torch.Tensor, num_classes: int) -> None:
        self.evaluator = evaluator
        self.evaluator_hash = evaluator.evaluator_hash
        self.num_classes = num_classes
        device = next(evaluator.net.parameters()).device
        _, features = logits_and_features(evaluator.net, test_images.to(device))
        self.test_mean, self.test_cov = (t.cpu() for t in metrics.feature_statistics(features))

    def evaluate(self, samples: torch.Tensor, requested_labels: torch.Tensor | None = None) -> dict:
        """``fd``, ``is``, ``class_entropy``, ``classes_covered``, ``evaluator_hash``, and
        ``label_accuracy`` when labels were requested. Samples must be finite images in [-1, 1]."""
        net = self.evaluator.net
        device = next(net.parameters()).device
        samples = samples.detach().to(device, torch.float32)
        if not bool(torch.isfinite(samples).all()):
            raise ValueError("quality: samples hold NaN or infinite values; check for divergence before evaluating")
        logits, features = logits_and_features(net, samples)
        probs = logits.double().softmax(dim=1).cpu()
        mean, cov = (t.cpu() for t in metrics.feature_statistics(features))
        report = {
            "fd": metrics.frechet_distance(mean, cov, self.test_mean, self.test_cov),
            "is": metrics.inception_score(probs),
            "class_entropy": metrics.class_entropy(probs, self.num_classes),
            "classes_covered": metrics.classes_covered(probs, self.num_classes),
            "evaluator_hash": self.evaluator_hash,
        }
        if requested_labels is not None:
            agree = probs.argmax(dim=1) == requested_labels.detach().cpu()
            report["label_accuracy"] = agree.double().mean().item()
        return report


class MixtureQuality(Quality):
    """Mode coverage and precision of 2-D samples against the known mixture; no evaluator needed."""

    def __init__(self, mixture: Mixture, test_points: torch.Tensor) -> None:
        self.mixture = mixture
        self.test_manifold = metrics.Manifold.of(test_points[:MIXTURE_MANIFOLD_POINTS].cpu())

    def evaluate(self, samples: torch.Tensor, requested_labels: torch.Tensor | None = None) -> dict:
        """``js_modes`` (the objective), the mode diagnostics, and k-NN precision, recall, density and
        coverage against the test set; labels are not scored for mixtures."""
        samples = samples.detach().cpu()
        return {**metrics.mode_metrics(samples, self.mixture), **metrics.manifold_metrics(self.test_manifold, samples)}


def build_quality(data: DataBundle, device: torch.device, cache_dir: str | Path | None = None) -> Quality:
    """The scorer for ``data``: for images, loads (or first trains and caches) the dataset's evaluator
    on ``device`` and computes the real test set's feature statistics once."""
    if not data.is_image:
        return MixtureQuality(data.mixture, data.test_x)
    evaluator = load_or_train_evaluator(data.name, None, device, cache_dir, data=data)
    return ImageQuality(evaluator, data.test_x, data.num_classes)
