"""The quality metrics against closed forms and against samples whose answer is known."""

from __future__ import annotations

import math

import pytest
import torch

from trainables.data.loading import grid25, ring8
from trainables.quality import metrics


def _random_spd(dim: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    factor = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    return factor @ factor.T + 0.1 * torch.eye(dim, dtype=torch.float64)


def test_frechet_distance_of_identical_gaussians_is_zero():
    cov = _random_spd(16, seed=0)
    mean = torch.linspace(-1, 1, 16, dtype=torch.float64)
    assert metrics.frechet_distance(mean, cov, mean, cov) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_of_1d_gaussians_matches_closed_form():
    # N(m1, s1^2) vs N(m2, s2^2): (m1 - m2)^2 + (s1 - s2)^2
    distance = metrics.frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([-2.0]), torch.tensor([[0.25]]))
    assert distance == pytest.approx(3.0**2 + (2.0 - 0.5) ** 2)


def test_frechet_distance_of_diagonal_gaussians_matches_closed_form():
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    std1, std2 = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 2.0, 0.5])
    expected = (mu1 - mu2).square().sum() + (std1 - std2).square().sum()
    distance = metrics.frechet_distance(mu1, torch.diag(std1**2), mu2, torch.diag(std2**2))
    assert distance == pytest.approx(expected.item())


def test_frechet_distance_handles_covariances_that_do_not_commute():
    # For 2x2 M with positive eigenvalues, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)).
    cov1, cov2 = _random_spd(2, seed=1), _random_spd(2, seed=2)
    product = cov1 @ cov2
    assert not torch.allclose(product, cov2 @ cov1)
    cross = math.sqrt(product.trace().item() + 2 * math.sqrt(torch.linalg.det(product).item()))
    expected = cov1.trace().item() + cov2.trace().item() - 2 * cross
    zero = torch.zeros(2, dtype=torch.float64)
    assert metrics.frechet_distance(zero, cov1, zero, cov2) == pytest.approx(expected, rel=1e-9)


def test_feature_statistics_match_numpy_style_unbiased_covariance():
    features = torch.randn(500, 4, generator=torch.Generator().manual_seed(3))
    mean, cov = metrics.feature_statistics(features)
    assert torch.allclose(mean, features.double().mean(dim=0))
    assert torch.allclose(cov, torch.cov(features.double().T))


def test_inception_score_is_k_for_confident_balanced_predictions_and_1_for_constant_ones():
    balanced = torch.eye(10).repeat(100, 1)
    assert metrics.inception_score(balanced) == pytest.approx(10.0)
    constant = torch.full((1000, 10), 0.01)
    constant[:, 3] = 0.91
    assert metrics.inception_score(constant) == pytest.approx(1.0)


def test_class_entropy_and_coverage_of_balanced_and_collapsed_labels():
    balanced = torch.arange(1000) % 10
    assert metrics.class_entropy(balanced, 10) == pytest.approx(math.log(10))
    assert metrics.classes_covered(balanced, 10) == 10
    collapsed = torch.full((1000,), 7)
    assert metrics.class_entropy(collapsed, 10) == pytest.approx(0.0)
    assert metrics.classes_covered(collapsed, 10) == 1


def test_class_metrics_take_probabilities_or_labels_alike():
    probs = torch.softmax(torch.randn(300, 10, generator=torch.Generator().manual_seed(4)), dim=1)
    labels = probs.argmax(dim=1)
    assert metrics.class_entropy(probs, 10) == metrics.class_entropy(labels, 10)
    assert metrics.classes_covered(probs, 10) == metrics.classes_covered(labels, 10)


def test_coverage_threshold_is_a_tenth_of_the_uniform_share():
    # 1000 samples over 10 bins: the uniform share is 100, so a bin needs 10.
    counts = torch.tensor([10.0, 9.0] + [122.625] * 8)
    assert metrics.count_covered(counts, 1000) == 9


@pytest.mark.parametrize("make_mixture", [ring8, grid25])
def test_samples_of_the_true_mixture_cover_every_mode(make_mixture):
    mixture = make_mixture()
    points, _ = mixture.sample(20_000, torch.Generator().manual_seed(5))
    scores = metrics.mode_metrics(points, mixture)
    assert scores["modes_covered"] == mixture.num_modes
    # Within 3 sigma in 2-D: 1 - exp(-4.5) = 0.9889 of a Gaussian's mass.
    assert scores["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.005)
    assert scores["kl_modes"] < 0.01


@pytest.mark.parametrize("make_mixture", [ring8, grid25])
def test_samples_of_one_mode_cover_one(make_mixture):
    mixture = make_mixture()
    points = mixture.centers[2] + mixture.std * torch.randn(5000, 2, generator=torch.Generator().manual_seed(6))
    scores = metrics.mode_metrics(points, mixture)
    assert scores["modes_covered"] == 1
    assert scores["high_quality"] > 0.98
    assert scores["kl_modes"] == pytest.approx(math.log(mixture.num_modes))


def test_points_far_from_every_mode_score_no_quality_and_worst_kl():
    mixture = ring8()
    points = torch.zeros(1000, 2)  # the ring's centre lies 2 away from every mode (100 sigma)
    scores = metrics.mode_metrics(points, mixture)
    # Every sample off every mode: the histogram and the target share no bin, the JS maximum.
    assert scores == {"modes_covered": 0, "high_quality": 0.0, "kl_modes": pytest.approx(math.log(8)),
                      "js_modes": pytest.approx(math.log(2))}


def test_js_modes_of_total_collapse_matches_closed_form():
    mixture = ring8()
    points = mixture.centers[2].repeat(1000, 1)  # every sample exactly on one mode
    # p = one-hot, q = uniform over 8, m = (p + q) / 2:
    # KL(p || m) = log(16 / 9); KL(q || m) = 1/8 log(2 / 9) + 7/8 log 2.
    expected = (math.log(16 / 9) + math.log(2 / 9) / 8 + 7 / 8 * math.log(2)) / 2
    assert metrics.mode_metrics(points, mixture)["js_modes"] == pytest.approx(expected, rel=1e-9)


def test_half_of_the_modes_give_kl_log_2():
    mixture = ring8()
    points, modes = mixture.sample(8000, torch.Generator().manual_seed(7))
    even = points[modes % 2 == 0]
    scores = metrics.mode_metrics(even, mixture)
    assert scores["modes_covered"] == 4
    assert scores["kl_modes"] == pytest.approx(math.log(2), abs=0.01)


def test_manifold_metrics_of_the_real_set_itself_and_of_a_far_away_set():
    real = torch.randn(600, 3, generator=torch.Generator().manual_seed(8))
    manifold = metrics.Manifold.of(real)
    same = metrics.manifold_metrics(manifold, real)
    # Each real point lies in its own ball (distance 0), and in k others on average.
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["density"] == pytest.approx(1 + 1 / manifold.k, abs=0.1)
    far = metrics.manifold_metrics(manifold, real + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
