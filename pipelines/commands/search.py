"""``gantune search``: find GAN hyperparameters with Ray Tune and Optuna, locally or on a Ray cluster.

Flags are read as text and checked by ``pipelines.search.plan`` before Ray starts or a folder is
created, so a bad value is one line and exit 2 (argparse's own errors print the whole usage).
"""

from __future__ import annotations

import os
import sys
from importlib.resources import files

from pipelines.commands.flags import add_tracking_uri
from pipelines.search.plan import NUMBER_FLAGS, plan

DEFAULT_STORAGE = "./gantune-runs"


def _bundled_presets() -> str:
    """The names of ``search_spaces/presets/*.yaml``, listed without loading them (``--help`` stays instant)."""
    folder = files("search_spaces") / "presets"
    return ", ".join(sorted(entry.name.removesuffix(".yaml") for entry in folder.iterdir() if entry.name.endswith(".yaml")))


def register(subparsers) -> None:
    parser = subparsers.add_parser("search", help="search GAN hyperparameters with Ray Tune + Optuna")
    parser.add_argument("--config", metavar="FILE", help=f"search preset YAML, or a bundled preset name ({_bundled_presets()})")
    for number in NUMBER_FLAGS:
        parser.add_argument(number.flag, metavar=number.metavar, help=number.help)
    parser.add_argument("--address", help="auto, HOST:PORT or ray://HOST:PORT of a Ray cluster (default: start Ray here)")
    parser.add_argument("--storage", default=DEFAULT_STORAGE, metavar="PATH_OR_URI",
                        help=f"folder or URI (s3://, gs://, ...) that holds searches (default {DEFAULT_STORAGE})")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted search --name under --storage")
    parser.add_argument("--name", help="search folder name under --storage (default: <preset>-<time>)")
    parser.add_argument("--optuna-storage", metavar="URL",
                        help="SQLAlchemy URL of the Optuna study (default: sqlite optuna.db in the search folder)")
    add_tracking_uri(parser, "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else mlflow.db in the search folder)")
    parser.add_argument("--experiment", metavar="NAME", help="MLflow experiment (default: the search name)")
    parser.add_argument("--shared-storage", action="store_true",
                        help="with --address: the local --storage folder is mounted at the same path on every node")
    parser.set_defaults(func=run)


def check_files_and_stores(args) -> None:
    """The paths ``plan`` leaves to the libraries that open them once Ray runs: a folder given as --config, and
    a tracking store or Optuna database that cannot be opened or created."""
    from pipelines.commands.checks import check_not_a_folder
    from pipelines.output_folder import check_sqlite_target
    from pipelines.tracking.lookup import check_store, sqlite_path
    from pipelines.tracking.target import TRACKING_ENV

    check_not_a_folder("--config", args.config)
    tracking_uri = args.tracking_uri or os.environ.get(TRACKING_ENV)
    if tracking_uri:
        check_store(tracking_uri, "--tracking-uri" if args.tracking_uri else f"${TRACKING_ENV}", existing=False)
    study = sqlite_path(args.optuna_storage) if args.optuna_storage else None
    if study is not None:
        check_sqlite_target("--optuna-storage", args.optuna_storage, study)


def run(args) -> int:
    from pipelines.search.runner import RayStartError, SearchInterrupted, run_search

    check_files_and_stores(args)
    search = plan(args)
    print(f"search {search.folder.name}: {search.preset.dataset}, {search.preset.metric} ({search.preset.mode}), "
          f"folder {search.folder.path}")
    try:
        return 0 if run_search(search) is not None else 1
    except RayStartError as err:
        print(f"gantune search: {err}", file=sys.stderr)
        return 1
    except SearchInterrupted as stop:
        if stop.resume:
            print(f"search {search.folder.name} interrupted; continue it with:\n{stop.resume}", flush=True)
        else:
            print(f"search {search.folder.name} stopped before any trial started; nothing to resume", flush=True)
        return stop.exit_code
