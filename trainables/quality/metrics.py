"""Sample-quality metrics as pure functions of tensors.

Everything that sums over many samples or takes a matrix square root runs in float64: the
Fréchet distance subtracts traces of similar size, and float32 loses the small distances that
separate a good generator from a perfect one.

A metric a search may optimise must get worse both when samples leave the data (quality) and
when modes or classes are dropped (coverage); ``trainables/quality/objectives.py`` lists those that do.
``js_modes`` is the 2-D objective; ``kl_modes``, ``modes_covered`` and ``high_quality`` each see
only one of the two failures and are diagnostics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trainables.data.records import Mixture

# A class or mode counts as covered when it gets at least this fraction of its uniform share n/K.
COVERAGE_FRACTION = 0.1
# A 2-D sample is of high quality when it lies within this many standard deviations of its mode.
HIGH_QUALITY_SIGMAS = 3.0
# Neighbours that define a k-NN manifold: Naeem et al. (2020) recommend k = 5 for density and
# coverage, and precision and recall (Kynkäänniemi et al. 2019) use the same radii.
NEAREST_K = 5
# Rows of a pairwise-distance block: bounds memory at CHUNK x N floats whatever the sample count.
DISTANCE_CHUNK = 1024


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


def _js_divergence(p: torch.Tensor, q: torch.Tensor) -> float:
    """Jensen-Shannon divergence (nats) of two histograms on the same bins: 0 when equal, at most
    log 2, and finite when either has empty bins."""
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    kl = lambda a: (torch.special.xlogy(a, a) - torch.special.xlogy(a, m)).sum()  # noqa: E731
    return max(((kl(p) + kl(q)) / 2).item(), 0.0)


def mode_metrics(points: torch.Tensor, mixture: Mixture) -> dict[str, float | int]:
    """Coverage and precision of 2-D samples against the mixture they should reproduce.

    Each point is assigned to its nearest centre and is of high quality when it lies within
    ``HIGH_QUALITY_SIGMAS`` standard deviations of it (98.9% of true samples in 2-D).
    ``modes_covered`` counts modes whose high-quality count reaches the coverage threshold;
    ``kl_modes`` is KL(p || uniform) of the high-quality points' mode histogram, 0 when they
    spread evenly. With no high-quality point at all there is no histogram, and ``kl_modes`` is
    log K, the value of total collapse onto one mode, so that it never looks better than a
    generator that hits at least one mode. Neither sees off-mode mass, which a blurry generator
    has plenty of.

    ``js_modes`` is the objective: the Jensen-Shannon divergence between the histogram of all
    points over K + 1 bins (each mode's high-quality points, then one bin for every point off all
    modes) and the target, uniform over the K modes with nothing off them. Dropping modes and
    missing them both move mass away from the target, so it rises (towards log 2) with either.
    """
    points = points.double()
    centers = mixture.centers.to(points.device, torch.float64)
    distance, nearest = torch.cdist(points, centers).min(dim=1)
    good = distance <= HIGH_QUALITY_SIGMAS * mixture.std
    counts = torch.bincount(nearest[good], minlength=mixture.num_modes).double()
    num_good = int(good.sum().item())
    log_k = math.log(mixture.num_modes)
    with_off_modes = torch.cat([counts, counts.new_tensor([points.shape[0] - num_good])])
    target = torch.cat([torch.ones_like(counts), counts.new_zeros(1)])
    return {
        "js_modes": _js_divergence(with_off_modes, target),
        "modes_covered": count_covered(counts, points.shape[0]),
        "high_quality": num_good / points.shape[0],
        "kl_modes": log_k - _entropy(counts) if num_good else log_k,
    }


def knn_radii(points: torch.Tensor, k: int = NEAREST_K) -> torch.Tensor:
    """Distance from each row of ``points`` to its k-th nearest other row: the radii of the balls
    whose union is the k-NN estimate of the points' manifold."""
    radii = []
    for start in range(0, points.shape[0], DISTANCE_CHUNK):
        block = torch.cdist(points[start : start + DISTANCE_CHUNK], points)
        radii.append(block.topk(k + 1, dim=1, largest=False).values[:, k])  # column 0 is the point itself
    return torch.cat(radii)


@dataclass(frozen=True)
class Manifold:
    """Real samples (or their features) with their k-NN radii, computed once per dataset."""

    points: torch.Tensor
    radii: torch.Tensor
    k: int

    @classmethod
    def of(cls, points: torch.Tensor, k: int = NEAREST_K) -> "Manifold":
        points = points.double()
        return cls(points, knn_radii(points, k), k)


def manifold_metrics(real: Manifold, fake: torch.Tensor) -> dict[str, float]:
    """Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020).

    precision: share of fake samples inside the real manifold (quality); recall: share of real
    samples inside the fake manifold (diversity); density: how many real balls hold each fake
    sample, divided by k (about 1 for matching distributions, unbounded above, so outliers in the
    real set cannot inflate it the way they inflate precision); coverage: share of real samples
    whose ball holds at least one fake sample (diversity that, unlike recall, fake outliers
    cannot inflate). Distances are taken in blocks of rows, so memory stays linear in N.
    """
    fake = fake.double()
    fake_radii = knn_radii(fake, real.k)
    in_real_balls = torch.zeros(fake.shape[0], dtype=torch.float64)
    real_covered = torch.zeros(real.points.shape[0], dtype=torch.bool)
    real_recalled = torch.zeros(real.points.shape[0], dtype=torch.bool)
    for start in range(0, fake.shape[0], DISTANCE_CHUNK):
        block = torch.cdist(fake[start : start + DISTANCE_CHUNK], real.points)  # (chunk, real)
        inside_real = block <= real.radii
        in_real_balls[start : start + DISTANCE_CHUNK] = inside_real.sum(dim=1).double()
        real_covered |= (block < real.radii).any(dim=0)
        real_recalled |= (block <= fake_radii[start : start + DISTANCE_CHUNK, None]).any(dim=0)
    return {
        "precision": (in_real_balls > 0).double().mean().item(),
        "recall": real_recalled.double().mean().item(),
        "density": (in_real_balls.sum() / (real.k * fake.shape[0])).item(),
        "coverage": real_covered.double().mean().item(),
    }
