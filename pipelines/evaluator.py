"""``gantune evaluator train``: build a dataset's evaluator ahead of time, so no run waits for it."""

from __future__ import annotations

import argparse

from trainables.config import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluator", help="the image classifier behind the fd/is quality metrics")
    actions = parser.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train", help="train a dataset's evaluator and cache it (reuses the cache when present)")
    train.add_argument("--dataset", required=True, help="an image dataset: mnist, fashion_mnist or cifar10")
    train.add_argument("--data-root", help="folder with torchvision's files (default: $GANTUNE_DATA_ROOT or ./data)")
    train.add_argument("--cache-dir", help="evaluator cache (default: $GANTUNE_CACHE_DIR or ~/.cache/gantune)")
    train.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    train.set_defaults(func=run)


def _device(name: str):
    import torch

    if name not in DEVICES:
        raise ConfigError(f"evaluator: --device must be one of {', '.join(DEVICES)}, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("evaluator: --device cuda was asked for but no CUDA device is available; use --device cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def run(args: argparse.Namespace) -> int:
    from trainables.evaluator import check_image_dataset, load_or_train_evaluator

    check_image_dataset(args.dataset)
    evaluator = load_or_train_evaluator(args.dataset, args.data_root, _device(args.device), args.cache_dir)
    origin = f"trained in {evaluator.train_seconds:.0f} s" if evaluator.trained_now else "reused from the cache"
    print(f"evaluator {args.dataset}: test accuracy {evaluator.test_accuracy:.2%} ({origin})")
    print(f"cache: {evaluator.weights_path}")
    print(f"evaluator_hash: {evaluator.evaluator_hash}")
    return 0
