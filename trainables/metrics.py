"""Sample-quality metrics as pure functions of tensors.

Everything that sums over many samples or takes a matrix square root runs in float64: the
Fréchet distance subtracts traces of similar size, and float32 loses the small distances that
separate a good generator from a perfect one.
"""

from __future__ import annotations

import math

import torch

from trainables.data import Mixture

# A class or mode counts as covered when it gets at least this fraction of its uniform share n/K.
COVERAGE_FRACTION = 0.1
# A 2-D sample is of high quality when it lies within this many standard deviations of its mode.
HIGH_QUALITY_SIGMAS = 3.0


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) covariance of the rows of ``features``, in float64."""
    features = features.double()
    mean = features.mean(dim=0)
    centered = features - mean
    return mean, centered.T @ centered / (features.shape[0] - 1)


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix; rounding's negative eigenvalues become 0."""
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    return (eigenvectors * eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """Fréchet distance between the Gaussians N(mu1, cov1) and N(mu2, cov2).

    ``tr sqrt(cov1 cov2)`` is taken as ``tr sqrt(S cov2 S)`` with ``S = sqrt(cov1)``: the two
    products have the same eigenvalues, and the second is symmetric, so a symmetric
    eigendecomposition is enough (no general matrix square root, no complex parts to discard).
    """
    mu1, cov1, mu2, cov2 = (torch.as_tensor(t, dtype=torch.float64) for t in (mu1, cov1, mu2, cov2))
    root1 = _psd_sqrt(cov1)
    middle = root1 @ cov2 @ root1
    cross_trace = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    distance = (mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2 * cross_trace
    return max(distance.item(), 0.0)


def inception_score(probs: torch.Tensor) -> float:
    """``exp E_x KL(p(y|x) || p(y))`` over one split: K for confident predictions spread evenly over
    K classes, 1 when every sample gets the same prediction."""
    probs = probs.double()
    marginal = probs.mean(dim=0)
    kl = torch.special.xlogy(probs, probs).sum(dim=1) - (probs * marginal.clamp(min=1e-30).log()).sum(dim=1)
    return math.exp(kl.mean().item())


def predicted_counts(predictions: torch.Tensor, num_classes: int) -> torch.Tensor:
    """How many samples each class got: ``predictions`` are labels (N,) or class probabilities (N, K)."""
    labels = predictions.argmax(dim=1) if predictions.ndim == 2 else predictions
    return torch.bincount(labels.long().flatten(), minlength=num_classes).double()


def _entropy(counts: torch.Tensor) -> float:
    """Entropy in nats of the histogram ``counts`` (which must not be all zero)."""
    p = counts / counts.sum()
    return 0.0 - torch.special.xlogy(p, p).sum().item()  # 0.0 - : no "-0.0" for a collapsed histogram


def class_entropy(predictions: torch.Tensor, num_classes: int) -> float:
    """Entropy (nats) of the distribution of predicted labels: log K when classes are balanced, 0 at
    full collapse onto one class."""
    return _entropy(predicted_counts(predictions, num_classes))


def count_covered(counts: torch.Tensor, total: int) -> int:
    """How many of the K bins in ``counts`` hold at least ``COVERAGE_FRACTION`` of the uniform share
    ``total / K``; the one rule for both classes and mixture modes."""
    threshold = COVERAGE_FRACTION * total / counts.numel()
    return int((counts >= threshold).sum().item())


def classes_covered(predictions: torch.Tensor, num_classes: int) -> int:
    """Number of classes that get a fair fraction of the predictions (see ``count_covered``)."""
    return count_covered(predicted_counts(predictions, num_classes), predictions.shape[0])


def mode_metrics(points: torch.Tensor, mixture: Mixture) -> dict[str, float | int]:
    """Coverage and precision of 2-D samples against the mixture they should reproduce.

    Each point is assigned to its nearest centre and is of high quality when it lies within
    ``HIGH_QUALITY_SIGMAS`` standard deviations of it (98.9% of true samples in 2-D).
    ``modes_covered`` counts modes whose high-quality count reaches the coverage threshold;
    ``kl_modes`` is KL(p || uniform) of the high-quality points' mode histogram, 0 when they
    spread evenly. With no high-quality point at all there is no histogram, and ``kl_modes`` is
    log K, the value of total collapse onto one mode, so that it never looks better than a
    generator that hits at least one mode.
    """
    points = points.double()
    centers = mixture.centers.to(points.device, torch.float64)
    distance, nearest = torch.cdist(points, centers).min(dim=1)
    good = distance <= HIGH_QUALITY_SIGMAS * mixture.std
    counts = torch.bincount(nearest[good], minlength=mixture.num_modes).double()
    num_good = int(good.sum().item())
    log_k = math.log(mixture.num_modes)
    return {
        "modes_covered": count_covered(counts, points.shape[0]),
        "high_quality": num_good / points.shape[0],
        "kl_modes": log_k - _entropy(counts) if num_good else log_k,
    }
