"""The MNIST evaluator, its cache, the quality scores built on it, and ``gantune evaluator train``."""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import multiprocessing
import time
from pathlib import Path

import pytest
import torch

from pipelines.cli import main
from trainables.data.datasets import load_dataset
from trainables.data.records import DataBundle, as_samples
from trainables.quality.evaluator_cache import load_or_train_evaluator
from trainables.quality.objectives import IMAGE_METRICS
from trainables.quality.scoring import build_quality

CPU = torch.device("cpu")


@pytest.fixture(scope="session")
def mnist_quality(mnist):
    """Trains the MNIST evaluator into the session cache unless an earlier test already did."""
    return build_quality(mnist, CPU)


@pytest.fixture(scope="session")
def real_train_scores(mnist, mnist_quality) -> dict:
    return mnist_quality.evaluate(as_samples(mnist.train_x[:10_000]), mnist.train_y[:10_000])


def _tiny_mnist(mnist: DataBundle) -> DataBundle:
    """A slice of MNIST: its own cache key, and an evaluator that trains in about a second."""
    return DataBundle(mnist.spec, mnist.train_x[:512], mnist.train_y[:512], mnist.test_x[:256], mnist.test_y[:256])


def test_mnist_evaluator_reaches_99_percent_and_records_its_hash(mnist_quality):
    evaluator = mnist_quality.evaluator
    assert evaluator.test_accuracy >= 0.99
    weights = evaluator.weights_path.read_bytes()
    assert evaluator.evaluator_hash == hashlib.sha256(weights).hexdigest() == mnist_quality.evaluator_hash
    record = json.loads(evaluator.weights_path.with_suffix(".json").read_text())
    assert record["evaluator_hash"] == evaluator.evaluator_hash
    assert record["test_accuracy"] == evaluator.test_accuracy
    assert record["recipe"]["epochs"] == evaluator.recipe.epochs


def test_second_load_reuses_the_cached_evaluator(mnist, mnist_quality):
    first = mnist_quality.evaluator
    written = first.weights_path.stat().st_mtime_ns
    again = load_or_train_evaluator(mnist, CPU)
    assert not again.trained_now
    assert again.weights_path == first.weights_path
    assert again.weights_path.stat().st_mtime_ns == written
    assert again.evaluator_hash == first.evaluator_hash
    for name, tensor in first.net.state_dict().items():
        assert torch.equal(tensor, again.net.state_dict()[name]), name


def test_real_images_score_close_to_the_test_set_and_noise_far(mnist_quality, real_train_scores):
    noise = torch.rand(10_000, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    noise_scores = mnist_quality.evaluate(noise)
    assert real_train_scores["fd"] < 5.0  # measured 1.5: finite-sample bias, the floor any generator meets
    assert noise_scores["fd"] > 100 * max(real_train_scores["fd"], 0.01)
    assert real_train_scores["classes_covered"] == 10
    assert real_train_scores["class_entropy"] > 0.99 * math.log(10)
    assert real_train_scores["is"] > 9.0


def test_scores_are_plain_numbers_with_label_accuracy_only_when_labels_are_given(mnist, mnist_quality, real_train_scores):
    assert set(real_train_scores) == {"evaluator_hash", *IMAGE_METRICS}
    numbers = set(IMAGE_METRICS) - {"classes_covered"}
    assert all(type(real_train_scores[key]) is float for key in numbers)
    assert type(real_train_scores["classes_covered"]) is int
    assert real_train_scores["evaluator_hash"] == mnist_quality.evaluator_hash
    assert real_train_scores["label_accuracy"] >= 0.99
    images, labels = mnist.test_samples()[:2000], mnist.test_y[:2000]
    wrong_labels = mnist_quality.evaluate(images, (labels + 1) % 10)
    assert wrong_labels["label_accuracy"] < 0.02
    assert "label_accuracy" not in mnist_quality.evaluate(images)


def test_evaluate_builds_no_autograd_graph(mnist, mnist_quality):
    scale = torch.ones((), requires_grad=True)
    scores = mnist_quality.evaluate(mnist.test_samples()[:1000] * scale)
    assert all(not isinstance(value, torch.Tensor) for value in scores.values())
    assert scale.grad is None and scale.grad_fn is None


def test_a_collapsed_generator_covers_one_class(mnist, mnist_quality, real_train_scores):
    ones = as_samples(mnist.train_x[mnist.train_y == 1][:2000])
    scores = mnist_quality.evaluate(ones)
    assert scores["classes_covered"] == 1
    assert scores["class_entropy"] < 0.1
    assert scores["is"] < 1.5
    assert scores["fd"] > 10 * real_train_scores["fd"]


def test_non_finite_samples_are_refused(mnist, mnist_quality):
    samples = mnist.test_samples()[:100]
    samples[3, 0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        mnist_quality.evaluate(samples)


def test_2d_quality_needs_no_evaluator():
    ring = load_dataset("ring8")
    quality = build_quality(ring, CPU)
    assert quality.evaluator_hash is None
    scores = quality.evaluate(ring.test_x)
    assert scores["modes_covered"] == 8 and scores["high_quality"] > 0.98 and scores["kl_modes"] < 0.01


def test_a_corrupt_cached_evaluator_is_rebuilt(mnist, tmp_path):
    tiny = _tiny_mnist(mnist)
    built = load_or_train_evaluator(tiny, CPU, tmp_path)
    assert built.trained_now
    built.weights_path.write_bytes(b"not a safetensors file")
    rebuilt = load_or_train_evaluator(tiny, CPU, tmp_path)
    assert rebuilt.trained_now
    assert rebuilt.evaluator_hash == built.evaluator_hash  # the seeded recipe reproduces the same weights
    assert hashlib.sha256(rebuilt.weights_path.read_bytes()).hexdigest() == rebuilt.evaluator_hash


def _build_in_child(cache_dir: str, tiny: DataBundle) -> tuple[bool, str]:
    torch.set_num_threads(1)
    evaluator = load_or_train_evaluator(tiny, CPU, cache_dir)
    return evaluator.trained_now, evaluator.evaluator_hash


def _blocked_on(lock: Path) -> int:
    """How many processes wait in ``flock`` for ``lock``: the kernel lists each as a ``->`` line of /proc/locks."""
    inode = lock.stat().st_ino
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line.split() and int(line.split()[-3].rsplit(":", 1)[1]) == inode)


def test_two_processes_building_at_once_train_once(mnist, tmp_path):
    """Both builders reach the lock while it is held, neither trains until it is free, then exactly
    one trains and the other reuses its cache."""
    tiny = _tiny_mnist(mnist)
    # The lock's file name follows from the data and the recipe, not from the folder: learn it once.
    assert load_or_train_evaluator(tiny, CPU, tmp_path / "probe").trained_now
    lock_name, = [path.name for path in (tmp_path / "probe").glob("*.lock")]
    cache = tmp_path / "cache"
    cache.mkdir()
    lock = cache / lock_name
    with multiprocessing.get_context("spawn").Pool(2) as pool, lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a third builder would while it trains
        pending = pool.starmap_async(_build_in_child, [(str(cache), tiny)] * 2)
        deadline = time.monotonic() + 180
        while _blocked_on(lock) < 2:
            assert not pending.ready(), f"a builder ended while the lock was held: {pending.get()}"
            assert time.monotonic() < deadline, "the two builders never both waited on the lock"
            pending.wait(0.2)
        assert not list(cache.glob("*.safetensors")), "a builder trained without holding the lock"
        fcntl.flock(held, fcntl.LOCK_UN)
        results = pending.get(timeout=300)
    assert sorted(trained for trained, _ in results) == [False, True]
    weights, = cache.glob("*.safetensors")
    assert results[0][1] == results[1][1] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert not list(cache.glob(".*")), "a temporary file was left behind"


def test_cli_trains_or_reuses_and_prints_accuracy_cache_and_hash(data_root, mnist_quality, capsys):
    assert main(["evaluator", "train", "--dataset", "mnist", "--data-root", str(data_root), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "reused from the cache" in out
    assert f"test accuracy {mnist_quality.evaluator.test_accuracy:.2%}" in out
    assert str(mnist_quality.evaluator.weights_path) in out
    assert mnist_quality.evaluator_hash in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "ring8"], "'ring8' is a 2-D dataset"),
        (["--dataset", "svhn"], "'svhn' is unknown"),
        (["--dataset", "mnist", "--device", "tpu"], "device must be auto, cpu, cuda or cuda:N"),
    ],
)
def test_cli_rejects_bad_input_in_one_line(argv, message, capsys, tmp_path):
    assert main(["evaluator", "train", "--cache-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())
