"""Quality of generated samples, scored the same way at every evaluation interval of a run.

``build_quality`` does the expensive part once per run (the evaluator, the real test set's
features and their statistics); ``Quality.evaluate`` then scores a batch of samples in a few
seconds on a CPU and returns plain Python numbers, ready for JSON, Tune and MLflow.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch import nn

from trainables.data.records import DataBundle, Mixture
from trainables.quality import metrics
from trainables.quality.evaluator_cache import Evaluator, load_or_train_evaluator
from trainables.quality.evaluator_net import EvaluatorNet, logits_and_features
from trainables.quality.user_evaluator import load_user_features

# Test points that define the real manifold of a 2-D mixture: 200 per grid25 mode is dense enough
# for k-NN radii, and evaluation cost grows with this times the number of samples.
MIXTURE_MANIFOLD_POINTS = 5000
# KID (Bińkowski et al. 2018) averages the polynomial-kernel MMD over random subsets of real and
# fake features. Each 1000-row subset costs three 1000 x 1000 kernel matrices (10 ms on a CPU);
# 20 of them keep the subset-sampling noise at 0.15 against 0.24 with 10, on real vs real MNIST.
KID_SUBSETS = 20
KID_SUBSET_SIZE = 1000
KID_SEED = 0
# Rows of real and of fake features behind precision, recall, density and coverage: distances
# cost real x fake plus fake x fake rows, 6 to 15 s per evaluation at 10,000 a side on two CPU
# cores against 1 to 2 s at 5,000. The real rows are spread evenly over the test set, so both
# halves of MNIST's (two writer populations) are in it; the fake rows are the first ones,
# balanced over classes when labels were requested.
MANIFOLD_POINTS = 5000


class Quality(ABC):
    """Scores samples of one dataset; ``evaluator_hash`` names the evaluator behind image scores."""

    evaluator_hash: str | None = None

    @abstractmethod
    def evaluate(self, samples: torch.Tensor, requested_labels: torch.Tensor | None = None) -> dict:
        """Metrics of ``samples`` (any device); ``requested_labels`` are the labels a conditional
        generator was asked for."""


class EvaluatorFeatures(nn.Module):
    """The evaluator's penultimate features of images: the feature extractor KID runs in place of
    Inception (float32 is enough there: its rounding moves MNIST's KID by 3e-5, the subset
    sampling by 0.15)."""

    def __init__(self, net: EvaluatorNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _, features = logits_and_features(self.net, images)
        return features


class ImageQuality(Quality):
    """Scores in an evaluator's features against the real test set: the objectives ``fd``, ``kid``
    and ``coverage``, and precision, recall and density as diagnostics; with a ``classifier`` over
    those features (the trained evaluator's head, ``num_classes`` > 0), also ``is`` and the
    class-collapse signals."""

    def __init__(self, features: nn.Module, evaluator_hash: str, test_images: torch.Tensor,
                 classifier: nn.Module | None = None, num_classes: int = 0, evaluator: Evaluator | None = None) -> None:
        from torchmetrics.image.kid import KernelInceptionDistance  # seconds to import; 2-D runs skip it

        self.evaluator = evaluator  # the trained evaluator behind ``features``; None for the user's own
        self.evaluator_hash = evaluator_hash
        self.classifier = classifier
        self.num_classes = num_classes if classifier is not None else 0
        self.device = device = test_images.device  # the features' device: ``build_quality`` puts both there
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Metric `Kernel Inception Distance` will save", UserWarning)
            self.kid = KernelInceptionDistance(features, subsets=KID_SUBSETS, reset_real_features=False).to(device)
        self.kid.update(test_images, real=True)
        test_features = self.kid.real_features[0]
        self.test_mean, self.test_cov = (t.cpu() for t in metrics.feature_statistics(test_features))
        stride = -(-test_features.shape[0] // MANIFOLD_POINTS)
        self.test_manifold = metrics.Manifold.of(test_features[::stride].cpu())

    def evaluate(self, samples: torch.Tensor, requested_labels: torch.Tensor | None = None) -> dict:
        """``fd``, ``kid``, ``precision``, ``recall``, ``density``, ``coverage``, ``is``,
        ``class_entropy``, ``classes_covered``, ``evaluator_hash``, and ``label_accuracy`` when labels
        were requested. Samples must be finite images in [-1, 1].

        KID's update runs the evaluator and keeps the features, which fd, the manifold metrics and
        the class predictions (the evaluator's head on them) reuse: the forward pass is most of the
        cost, and a second one would double it.
        """
        samples = samples.detach().to(self.device, torch.float32)
        if not bool(torch.isfinite(samples).all()):
            raise ValueError("quality: samples hold NaN or infinite values; check for divergence before evaluating")
        self.kid.reset()
        self.kid.update(samples, real=False)
        features = self.kid.fake_features[0]
        mean, cov = (t.cpu() for t in metrics.feature_statistics(features))
        report = {
            "fd": metrics.frechet_distance(mean, cov, self.test_mean, self.test_cov),
            "kid": self._kid(features.shape[0]),
            **metrics.manifold_metrics(self.test_manifold, features[:MANIFOLD_POINTS].cpu()),
            "evaluator_hash": self.evaluator_hash,
        }
        if self.num_classes:
            report.update(self._class_metrics(features, requested_labels))
        return report

    def _class_metrics(self, features: torch.Tensor, requested_labels: torch.Tensor | None) -> dict:
        """``is``, ``class_entropy``, ``classes_covered`` and (labels requested) ``label_accuracy``:
        the classifier head's predictions on the features already computed."""
        with torch.inference_mode():
            probs = self.classifier(features).double().softmax(dim=1).cpu()
        report = {
            "is": metrics.inception_score(probs),
            "class_entropy": metrics.class_entropy(probs, self.num_classes),
            "classes_covered": metrics.classes_covered(probs, self.num_classes),
        }
        if requested_labels is not None:
            agree = probs.argmax(dim=1) == requested_labels.detach().cpu()
            report["label_accuracy"] = agree.double().mean().item()
        return report

    def _kid(self, num_fake: int) -> float:
        """KID of the ``num_fake`` fake features held by ``self.kid``, on subsets from a fixed seed.

        Subsets are drawn with torch's global CPU generator; forking it keeps evaluation from
        shifting training's random stream (a resumed run must replay it), and seeding it makes
        the score a function of the samples alone. The estimate is unbiased at any subset size,
        so fewer samples than ``KID_SUBSET_SIZE`` only make it noisier.
        """
        self.kid.subset_size = min(KID_SUBSET_SIZE, num_fake, self.kid.real_features[0].shape[0])
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(KID_SEED)
            mean, _ = self.kid.compute()
        return mean.item()


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


def build_quality(data: DataBundle, device: torch.device, cache_dir: str | Path | None = None,
                  evaluator: str | None = None) -> Quality:
    """The scorer for ``data``: for images, the user's feature extractor at ``evaluator``, or else the
    dataset's evaluator loaded (or first trained and cached) on ``device``; the real test set's
    features are extracted once."""
    spec = data.spec
    if not spec.is_image:
        return MixtureQuality(spec.mixture, data.test_x)
    test_images = data.test_samples().to(device)
    if evaluator is not None:
        features, evaluator_hash = load_user_features(evaluator, spec.shape, device)
        return ImageQuality(features, evaluator_hash, test_images)
    trained = load_or_train_evaluator(data, device, cache_dir)
    classifier = trained.net.head if trained.recipe.task == "classes" else None
    return ImageQuality(EvaluatorFeatures(trained.net), trained.evaluator_hash, test_images, classifier,
                        spec.num_classes, trained)
