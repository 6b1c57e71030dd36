"""``gantune search``: find GAN hyperparameters with Ray Tune and Optuna, locally or on a Ray cluster.

Flags are read as text and checked here, so a bad value is one line and exit 2 (argparse's own
errors print the whole usage), and every check runs before Ray starts or a folder is created.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable

from trainables.config import ConfigError

DEFAULT_STORAGE = "./gantune-runs"
_BUDGET_FLAGS = ("num_samples", "max_concurrent", "time_budget", "cpus_per_trial", "gpus_per_trial")


def register(subparsers) -> None:
    parser = subparsers.add_parser("search", help="search GAN hyperparameters with Ray Tune + Optuna")
    parser.add_argument("--config", metavar="FILE", help="search preset YAML, or a bundled preset name (grid25, mnist, wgan_family)")
    parser.add_argument("--num-samples", metavar="N", help="number of trials (overrides budget.num_samples)")
    parser.add_argument("--max-concurrent", metavar="K", help="trials running at once (overrides budget.max_concurrent)")
    parser.add_argument("--time-budget", metavar="SECONDS", help="stop starting and running trials after this long")
    parser.add_argument("--address", help="auto, HOST:PORT or ray://HOST:PORT of a Ray cluster (default: start Ray here)")
    parser.add_argument("--storage", default=DEFAULT_STORAGE, metavar="PATH_OR_URI",
                        help=f"folder or URI (s3://, gs://, ...) that holds searches (default {DEFAULT_STORAGE})")
    parser.add_argument("--cpus-per-trial", metavar="C", help="CPUs per trial, fractions allowed")
    parser.add_argument("--gpus-per-trial", metavar="G", help="GPUs per trial, fractions allowed (0.25: four per GPU)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted search --name under --storage")
    parser.add_argument("--name", help="search folder name under --storage (default: <preset>-<time>)")
    parser.add_argument("--optuna-storage", metavar="URL",
                        help="SQLAlchemy URL of the Optuna study (default: sqlite optuna.db in the search folder)")
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else mlflow.db in the search folder)")
    parser.add_argument("--experiment", metavar="NAME", help="MLflow experiment (default: the search name)")
    parser.add_argument("--shared-storage", action="store_true",
                        help="with --address: the local --storage folder is mounted at the same path on every node")
    parser.set_defaults(func=run)


def _number(flag: str, text: str | None, parse: Callable[[str], Any], minimum: float, strict: bool) -> Any:
    if text is None:
        return None
    kind = "an integer" if parse is int else "a number"
    bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
    try:
        value = parse(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < minimum or (strict and value == minimum):
        raise ConfigError(f"{flag} must be {kind} {bound}, got {text!r}")
    return value


def budget_flags(args) -> dict[str, Any]:
    """The budget and resource flags, checked; ``None`` for those not given."""
    return {
        "num_samples": _number("--num-samples", args.num_samples, int, 1, strict=False),
        "max_concurrent": _number("--max-concurrent", args.max_concurrent, int, 1, strict=False),
        "time_budget": _number("--time-budget", args.time_budget, float, 0, strict=True),
        "cpus_per_trial": _number("--cpus-per-trial", args.cpus_per_trial, float, 0, strict=True),
        "gpus_per_trial": _number("--gpus-per-trial", args.gpus_per_trial, float, 0, strict=False),
    }


def check_study_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except ArgumentError:
        raise ConfigError(f"--optuna-storage {url!r} is not a database URL such as sqlite:///study.db") from None
    return url


def _resumed_preset(args, folder, flags: dict[str, Any]):
    """On --resume the search continues as it was set up: its own search.yaml is the preset."""
    from search_spaces.preset import load_preset, preset_from_dict
    from pipelines.search.folder import SEARCH_FILE

    import yaml

    if not folder.exists():
        raise ConfigError(f"--resume: no search {folder.name!r} under {folder.storage}; check --name and --storage")
    changed = [f"--{key.replace('_', '-')}" for key, value in flags.items() if value is not None]
    if changed:
        raise ConfigError(f"{changed[0]} cannot change on --resume; the search keeps the budget in its {SEARCH_FILE}")
    saved = preset_from_dict(yaml.safe_load(folder.read_text(SEARCH_FILE)), name=folder.name,
                             source=f"{folder.path}/{SEARCH_FILE}")
    if args.config and load_preset(args.config).to_dict() != saved.to_dict():
        raise ConfigError(f"--config differs from the {SEARCH_FILE} of search {folder.name!r}; resume without --config")
    return saved


def plan(args):
    """Check every flag and the preset, and say what will run; raises ConfigError, starts nothing."""
    from search_spaces.preset import load_preset, with_overrides
    from pipelines.search.cluster_address import check_address
    from pipelines.search.folder import SearchFolder, check_name, is_uri, resolve_storage
    from pipelines.search.runner import SearchRun
    from pipelines.tracking.target import resolve_tracking

    flags = budget_flags(args)
    storage = resolve_storage(args.storage)
    if is_uri(storage) and not args.optuna_storage:
        raise ConfigError(f"--storage {storage} is not a local folder, so give the Optuna study a database with --optuna-storage URL")
    if args.resume:
        if not args.name:
            raise ConfigError("--resume needs --name, the folder under --storage of the search to continue")
        folder = SearchFolder(storage, check_name(args.name))
        preset = _resumed_preset(args, folder, flags)
    else:
        if not args.config:
            raise ConfigError("--config FILE is required: a search preset (e.g. search_spaces/presets/grid25.yaml)")
        preset = with_overrides(load_preset(args.config), **flags)
        name = check_name(args.name) if args.name else f"{preset.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        folder = SearchFolder(storage, name)
        if folder.exists():
            raise ConfigError(f"search {name!r} already exists under {storage}; pass --resume to continue it or choose another --name")
    address = check_address(args.address) if args.address else None
    tracking = resolve_tracking(args.tracking_uri, args.experiment, folder.name, folder.path, folder.is_local,
                                address, args.shared_storage)
    study_url = check_study_url(args.optuna_storage) if args.optuna_storage else folder.default_study_url()
    return SearchRun(preset, folder, study_url, address, resume=args.resume, tracking=tracking)


def run(args) -> int:
    from pipelines.search.runner import RayStartError, run_search

    search = plan(args)
    print(f"search {search.folder.name}: {search.preset.dataset}, {search.preset.metric} ({search.preset.mode}), "
          f"folder {search.folder.path}")
    try:
        return 0 if run_search(search) is not None else 1
    except RayStartError as err:
        print(f"gantune search: {err}", file=sys.stderr)
        return 1
