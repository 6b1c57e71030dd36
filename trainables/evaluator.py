"""The evaluator: a small CNN classifier of real images whose features and predictions score generated ones.

Inception features need weights that cannot be fetched offline and describe ImageNet, not
digits; a LeNet-style net trained here on the dataset itself trains in one to two minutes on two
CPU cores and gives features (``FEATURE_DIM`` wide) that separate what a generator gets wrong.
It is built once per dataset and cached on disk under a name that hashes the training recipe
and the data, with the sha256 of its weights file as the ``evaluator_hash`` that every
reported ``fd`` carries: two ``fd`` values are comparable only under the same hash.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from trainables.atomic import write_atomically
from trainables.config import ConfigError
from trainables.data import DATASET_SPECS, DataBundle, load_dataset

CACHE_DIR_ENV = "GANTUNE_CACHE_DIR"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "gantune"
FEATURE_DIM = 128
IMAGE_DATASETS = tuple(name for name, (shape, _) in DATASET_SPECS.items() if len(shape) == 3)
# Rows per forward pass when scoring many images: small enough for the activations to stay in
# cache (500 runs a third faster than 2000 on a CPU), and a bound on memory.
CHUNK_SIZE = 500


@dataclass(frozen=True)
class Recipe:
    """How an evaluator is trained; every field enters the cache key, so changing one retrains.

    ``architecture`` names the layout of ``EvaluatorNet``: change it together with the class.
    """

    architecture: str = "lenet-pool-bn-16-32-128"
    epochs: int = 2
    batch_size: int = 128
    peak_lr: float = 3e-3
    seed: int = 0


# Two epochs with a one-cycle schedule reach 99.4% on MNIST; the harder datasets need more.
RECIPES = {
    "mnist": Recipe(),
    "fashion_mnist": Recipe(epochs=5),
    "cifar10": Recipe(epochs=10),
}


class EvaluatorNet(nn.Module):
    """Two conv-pool-BN-ReLU blocks, a ``FEATURE_DIM`` penultimate layer, a linear classifier.

    Pooling comes straight after each convolution so that normalisation and ReLU touch a
    quarter of the activations: on a CPU those memory-bound layers otherwise cost as much as
    the convolutions themselves.
    """

    def __init__(self, in_channels: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, 16, 5, padding=2, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 5, padding=2, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * (image_size // 4) ** 2, FEATURE_DIM),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and penultimate features of images in [-1, 1]."""
        features = self.body(images)
        return self.head(features), features


def build_net(dataset: str) -> EvaluatorNet:
    (channels, size, _), num_classes = DATASET_SPECS[dataset]
    return EvaluatorNet(channels, size, num_classes)


@torch.inference_mode()
def logits_and_features(net: EvaluatorNet, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``net`` (in eval mode) over many images in chunks, on the images' device, without autograd."""
    outputs = [net(chunk) for chunk in images.split(CHUNK_SIZE)]
    return torch.cat([logits for logits, _ in outputs]), torch.cat([features for _, features in outputs])


def accuracy(net: EvaluatorNet, images: torch.Tensor, labels: torch.Tensor) -> float:
    logits, _ = logits_and_features(net, images)
    return (logits.argmax(dim=1) == labels).double().mean().item()


@dataclass
class Evaluator:
    """A trained evaluator in eval mode on its device, with the facts its cache records."""

    net: EvaluatorNet
    dataset: str
    test_accuracy: float
    evaluator_hash: str
    weights_path: Path
    recipe: Recipe
    train_seconds: float
    trained_now: bool  # False when it was loaded from the cache


def check_image_dataset(dataset: str) -> None:
    """Raise a one-line ConfigError unless ``dataset`` is an image dataset (the only kind with an evaluator)."""
    if dataset not in IMAGE_DATASETS:
        kind = "is a 2-D dataset, scored by its mixture modes without an evaluator" if dataset in DATASET_SPECS else "is unknown"
        raise ConfigError(f"evaluator: dataset {dataset!r} {kind}; choose one of {', '.join(IMAGE_DATASETS)}")


def _image_data(dataset: str, data_root: str | None, data: DataBundle | None) -> DataBundle:
    """The dataset as CPU tensors, loaded unless the caller passed it."""
    check_image_dataset(dataset)
    if data is None:
        return load_dataset(dataset, data_root)
    return data.to(torch.device("cpu"))


def train_evaluator(
    dataset: str,
    data_root: str | None,
    device: torch.device,
    recipe: Recipe | None = None,
    *,
    data: DataBundle | None = None,
) -> tuple[EvaluatorNet, float]:
    """Train an evaluator from scratch with a seeded recipe; returns the net (eval mode) and its test accuracy.

    The global RNG is forked so that seeding here leaves the caller's random streams untouched.
    """
    bundle = _image_data(dataset, data_root, data).to(device)
    recipe = recipe or RECIPES[dataset]
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(recipe.seed)
        net = build_net(dataset).to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=recipe.peak_lr)
        num_train = bundle.train_x.shape[0]
        steps_per_epoch = -(-num_train // recipe.batch_size)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, recipe.peak_lr, total_steps=recipe.epochs * steps_per_epoch
        )
        order = torch.Generator().manual_seed(recipe.seed)
        net.train()
        for _ in range(recipe.epochs):
            for index in torch.randperm(num_train, generator=order).to(device).split(recipe.batch_size):
                logits, _ = net(bundle.train_x[index])
                loss = F.cross_entropy(logits, bundle.train_y[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    net.eval().requires_grad_(False)
    return net, accuracy(net, bundle.test_x, bundle.test_y)


def resolve_cache_dir(cache_dir: str | Path | None) -> Path:
    """``cache_dir``, else ``$GANTUNE_CACHE_DIR``, else ``~/.cache/gantune``."""
    return Path(cache_dir or os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(bundle: DataBundle, recipe: Recipe) -> str:
    """sha256 of the recipe and of every tensor the evaluator is trained and tested on."""
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(recipe), sort_keys=True).encode())
    for tensor in (bundle.train_x, bundle.train_y, bundle.test_x, bundle.test_y):
        digest.update(memoryview(tensor.contiguous().numpy()).cast("B"))
    return digest.hexdigest()


@dataclass(frozen=True)
class _CachePaths:
    weights: Path
    record: Path
    lock: Path

    @classmethod
    def of(cls, root: Path, dataset: str, key: str) -> "_CachePaths":
        stem = root / f"evaluator-{dataset}-{key[:16]}"
        return cls(stem.with_suffix(".safetensors"), stem.with_suffix(".json"), stem.with_suffix(".lock"))


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` so that concurrent trials build one evaluator and the rest wait for it."""
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _from_record(net: EvaluatorNet, paths: _CachePaths, record: dict, trained_now: bool) -> Evaluator:
    net.eval().requires_grad_(False)
    return Evaluator(
        net,
        record["dataset"],
        record["test_accuracy"],
        record["evaluator_hash"],
        paths.weights,
        Recipe(**record["recipe"]),
        record["train_seconds"],
        trained_now,
    )


def _read_cache(paths: _CachePaths, dataset: str, device: torch.device) -> Evaluator | None:
    """The cached evaluator, or None when it is missing, half-written or does not match its record."""
    from safetensors.torch import load_file

    try:
        record = json.loads(paths.record.read_text())
        if _sha256_file(paths.weights) != record["evaluator_hash"]:
            return None
        state = load_file(paths.weights, device=str(device))
    except (OSError, ValueError, KeyError):
        return None
    net = build_net(dataset).to(device)
    net.load_state_dict(state)
    return _from_record(net, paths, record, trained_now=False)


def _write_cache(paths: _CachePaths, net: EvaluatorNet, record: dict) -> str:
    """Write the weights, then the record naming their hash (so a record never names missing weights);
    returns that hash."""
    from safetensors.torch import save_file

    state = {name: tensor.detach().cpu().contiguous() for name, tensor in net.state_dict().items()}
    write_atomically(paths.weights, lambda tmp: save_file(state, str(tmp)))
    weights_hash = _sha256_file(paths.weights)
    full_record = {**record, "evaluator_hash": weights_hash}
    write_atomically(paths.record, lambda tmp: tmp.write_text(json.dumps(full_record, indent=2) + "\n"))
    return weights_hash


def load_or_train_evaluator(
    dataset: str,
    data_root: str | None,
    device: torch.device,
    cache_dir: str | Path | None = None,
    *,
    data: DataBundle | None = None,
) -> Evaluator:
    """The dataset's evaluator from the cache, trained and cached first when it is not there.

    ``data`` skips reloading when the caller holds the dataset already. Concurrent callers
    serialise on a lock file; the ones that waited then find the finished cache.
    """
    bundle = _image_data(dataset, data_root, data)
    recipe = RECIPES[dataset]
    root = resolve_cache_dir(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    paths = _CachePaths.of(root, dataset, cache_key(bundle, recipe))
    cached = _read_cache(paths, dataset, device)
    if cached is not None:
        return cached
    with _exclusive(paths.lock):
        cached = _read_cache(paths, dataset, device)
        if cached is not None:
            return cached
        started = time.perf_counter()
        net, test_accuracy = train_evaluator(dataset, data_root, device, recipe, data=bundle)
        record = {
            "dataset": dataset,
            "test_accuracy": test_accuracy,
            "recipe": dataclasses.asdict(recipe),
            "train_seconds": time.perf_counter() - started,
        }
        record["evaluator_hash"] = _write_cache(paths, net, record)
    return _from_record(net, paths, record, trained_now=True)
