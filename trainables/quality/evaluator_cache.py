"""The evaluator of each image dataset, trained once and cached on disk.

The cache file's name hashes the training recipe and the data (every pixel and label, so a
changed folder of the user's images trains a new one), and the sha256 of its weights file is
the ``evaluator_hash`` that every reported ``fd`` carries: two ``fd`` values are comparable only
under the same hash. Concurrent trials build one evaluator; the rest wait for it.
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

from trainables.atomic import write_atomically
from trainables.data.datasets import evaluator_recipe
from trainables.data.records import DataBundle, Recipe
from trainables.quality.evaluator_net import EvaluatorNet, build_net, head_size, train_evaluator

CACHE_DIR_ENV = "GANTUNE_CACHE_DIR"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "gantune"


@dataclass
class Evaluator:
    """A trained evaluator in eval mode on its device, with the facts its cache records."""

    net: EvaluatorNet
    dataset: str
    test_accuracy: float | None  # at the recipe's task (classes or quarter turns); None for random features
    evaluator_hash: str
    weights_path: Path
    recipe: Recipe
    train_seconds: float
    trained_now: bool  # False when it was loaded from the cache


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


def _read_cache(paths: _CachePaths, bundle: DataBundle, recipe: Recipe, device: torch.device) -> Evaluator | None:
    """The cached evaluator, or None when it is missing, half-written or does not match its record."""
    from safetensors.torch import load_file

    try:
        record = json.loads(paths.record.read_text())
        if _sha256_file(paths.weights) != record["evaluator_hash"]:
            return None
        state = load_file(paths.weights, device=str(device))
    except (OSError, ValueError, KeyError):
        return None
    net = build_net(bundle.spec.shape, head_size(recipe.task, bundle.spec.num_classes)).to(device)
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


def load_or_train_evaluator(data: DataBundle, device: torch.device, cache_dir: str | Path | None = None) -> Evaluator:
    """The evaluator of the image dataset ``data`` from the cache, trained and cached first when it is not there.

    Concurrent callers serialise on a lock file; the ones that waited then find the finished cache.
    """
    bundle = data.to(torch.device("cpu"))
    recipe = evaluator_recipe(bundle)
    dataset = bundle.spec.name
    root = resolve_cache_dir(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    paths = _CachePaths.of(root, dataset, cache_key(bundle, recipe))
    cached = _read_cache(paths, bundle, recipe, device)
    if cached is not None:
        return cached
    with _exclusive(paths.lock):
        cached = _read_cache(paths, bundle, recipe, device)
        if cached is not None:
            return cached
        started = time.perf_counter()
        net, test_accuracy = train_evaluator(bundle, device, recipe)
        record = {
            "dataset": dataset,
            "test_accuracy": test_accuracy,
            "recipe": dataclasses.asdict(recipe),
            "train_seconds": time.perf_counter() - started,
        }
        record["evaluator_hash"] = _write_cache(paths, net, record)
    return _from_record(net, paths, record, trained_now=True)
