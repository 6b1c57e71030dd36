"""``gantune evaluator train``: build a dataset's evaluator ahead of time, so no run waits for it."""

from __future__ import annotations

import argparse

from trainables.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluator", help="the image classifier behind the fd/is quality metrics")
    actions = parser.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train", help="train a dataset's evaluator and cache it (reuses the cache when present)")
    train.add_argument("--dataset", required=True,
                       help="an image dataset: mnist, fashion_mnist, cifar10, or folder / array for your own images")
    train.add_argument("--data-root", help="folder with torchvision's files (default: $GANTUNE_DATA_ROOT or ./data); "
                       "for folder / array, the folder of images or the .npy / .npz file")
    train.add_argument("--image-size", type=int, help="folder / array: resize and centre-crop to this square size")
    train.add_argument("--channels", type=int, help="folder / array: 1 (grey) or 3 (RGB); default: from the files")
    train.add_argument("--cache-dir", help="evaluator cache (default: $GANTUNE_CACHE_DIR or ~/.cache/gantune)")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    train.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.commands.checks import removed_if_failed
    from pipelines.output_folder import check_output_folder
    from trainables.core.config import config_from_dict, resolve_device
    from trainables.data.datasets import image_dataset, load_data, resolve_files
    from trainables.data.loading import DATA_ROOT_ENV, load, resolve_data_root
    from trainables.quality.evaluator_cache import CACHE_DIR_ENV, load_or_train_evaluator, resolve_cache_dir

    spec = image_dataset(args.dataset)
    device = resolve_device(args.device)
    check_output_folder("--cache-dir" if args.cache_dir else f"${CACHE_DIR_ENV}", resolve_cache_dir(args.cache_dir))
    if spec.from_files:
        config = resolve_files(config_from_dict({"dataset": args.dataset, "data_root": args.data_root,
                                                 "image_size": args.image_size, "channels": args.channels}))
        data = load_data(config)
    else:
        if args.image_size is not None or args.channels is not None:
            raise UsageError(f"--image-size and --channels apply to folder and array, not {args.dataset}; remove them")
        data_root = resolve_data_root(args.data_root)
        if data_root.exists() and not data_root.is_dir():
            flag = "--data-root" if args.data_root else f"${DATA_ROOT_ENV}"
            raise UsageError(f"{flag} {data_root} is a file; give the folder that holds torchvision's files")
        with removed_if_failed(data_root):
            data = load(spec, args.data_root)
    evaluator = load_or_train_evaluator(data, device, args.cache_dir)
    origin = f"trained in {evaluator.train_seconds:.0f} s" if evaluator.trained_now else "reused from the cache"
    task = {"classes": "test accuracy", "rotation": "rotation test accuracy"}.get(evaluator.recipe.task)
    score = f"{task} {evaluator.test_accuracy:.2%}" if task else "random features"
    print(f"evaluator {args.dataset}: {score} ({origin})")
    print(f"cache: {evaluator.weights_path}")
    print(f"evaluator_hash: {evaluator.evaluator_hash}")
    return 0
