"""Turning ``gantune search``'s flags into a ``SearchRun``: every check, nothing started.

Flags arrive as text; each is parsed and checked here, together with the preset, the storage,
the cluster address and the tracking store, so that a mistake is one line and exit 2 before Ray
starts or a folder is created.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

from trainables.errors import UsageError


@dataclass(frozen=True)
class NumberFlag:
    """A numeric flag that overrides one budget or resource key of the preset (``key``)."""

    key: str
    metavar: str
    help: str
    parse: Callable[[str], Any]
    minimum: float
    strict: bool  # whether the minimum itself is refused

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    def read(self, text: str | None) -> Any:
        """The value of the flag's text, checked; None when the flag was not given."""
        if text is None:
            return None
        kind = "an integer" if self.parse is int else "a number"
        bound = f"> {self.minimum:g}" if self.strict else f">= {self.minimum:g}"
        try:
            value = self.parse(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < self.minimum or (self.strict and value == self.minimum):
            raise UsageError(f"{self.flag} must be {kind} {bound}, got {text!r}")
        return value


NUMBER_FLAGS = (
    NumberFlag("num_samples", "N", "number of trials (overrides budget.num_samples)", int, 1, strict=False),
    NumberFlag("max_concurrent", "K", "trials running at once (overrides budget.max_concurrent)", int, 1, strict=False),
    NumberFlag("time_budget", "SECONDS", "stop starting and running trials after this long", float, 0, strict=True),
    NumberFlag("cpus_per_trial", "C", "CPUs per trial, fractions allowed", float, 0, strict=True),
    NumberFlag("gpus_per_trial", "G", "GPUs per trial, fractions allowed (0.25: four per GPU)", float, 0, strict=False),
    NumberFlag("cohort", "K", "trials of one shape trained as one model in each Ray trial (overrides budget.cohort)",
               int, 1, strict=False),
)


def budget_flags(args) -> dict[str, Any]:
    """The budget and resource flags, checked; ``None`` for those not given."""
    return {number.key: number.read(getattr(args, number.key)) for number in NUMBER_FLAGS}


def check_study_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(url)
    except ArgumentError:
        raise UsageError(f"--optuna-storage {url!r} is not a database URL such as sqlite:///study.db") from None
    return url


def _resumed_preset(args, folder, flags: dict[str, Any]):
    """On --resume the search continues as it was set up: its own search.yaml is the preset."""
    import yaml

    from pipelines.search.folder import SEARCH_FILE
    from search_spaces.preset import load_preset, preset_from_dict

    if not folder.exists():
        raise UsageError(f"--resume: no search {folder.name!r} under {folder.storage}; check --name and --storage")
    changed = [f"--{key.replace('_', '-')}" for key, value in flags.items() if value is not None]
    if changed:
        raise UsageError(f"{changed[0]} cannot change on --resume; the search keeps the budget in its {SEARCH_FILE}")
    saved = preset_from_dict(yaml.safe_load(folder.read_text(SEARCH_FILE)), name=folder.name,
                             source=f"{folder.path}/{SEARCH_FILE}")
    if args.config and load_preset(args.config).to_dict() != saved.to_dict():
        raise UsageError(f"--config differs from the {SEARCH_FILE} of search {folder.name!r}; resume without --config")
    return saved


def plan(args):
    """Check every flag and the preset, and say what will run; raises UsageError, starts nothing."""
    from pipelines.search.cluster_address import check_address
    from pipelines.search.folder import SearchFolder, check_name, is_uri, resolve_storage
    from pipelines.search.runner import SearchRun
    from pipelines.tracking.target import resolve_tracking
    from search_spaces.preset import load_preset, with_overrides
    from search_spaces.preset_reader import COHORT_WITH_PBT

    flags = budget_flags(args)
    storage = resolve_storage(args.storage)
    if is_uri(storage) and not args.optuna_storage:
        raise UsageError(f"--storage {storage} is not a local folder, so give the Optuna study a database with --optuna-storage URL")
    if args.resume:
        if not args.name:
            raise UsageError("--resume needs --name, the folder under --storage of the search to continue")
        folder = SearchFolder(storage, check_name(args.name))
        preset = _resumed_preset(args, folder, flags)
    else:
        if not args.config:
            raise UsageError("--config FILE is required: a search preset (e.g. search_spaces/presets/grid25.yaml)")
        preset = with_overrides(load_preset(args.config), **flags)
        if preset.budget.cohort > 1 and preset.scheduler.name == "pbt":
            raise UsageError(f"--cohort: {COHORT_WITH_PBT}")
        name = check_name(args.name) if args.name else f"{preset.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        folder = SearchFolder(storage, name)
        if folder.exists():
            raise UsageError(f"search {name!r} already exists under {storage}; pass --resume to continue it or choose another --name")
    address = check_address(args.address) if args.address else None
    tracking = resolve_tracking(args.tracking_uri, args.experiment, folder.name, folder.path, folder.is_local,
                                address, args.shared_storage)
    study_url = check_study_url(args.optuna_storage) if args.optuna_storage else folder.default_study_url()
    check_user_evaluator(preset)
    from pipelines.search.optuna_searcher import check_resumable  # loads Ray: only once every flag is valid
    check_resumable()
    return SearchRun(preset, folder, study_url, address, resume=args.resume, tracking=tracking,
                     resume_command=resume_command(args, folder), gpus_typed=flags["gpus_per_trial"] is not None)


def check_user_evaluator(preset) -> None:
    """The user's feature extractor, if the preset names one, loads and takes the images: checked
    here, so a broken one is one line before anything is written."""
    data = preset.data_config()
    if data.evaluator:
        import torch

        from trainables.data.datasets import spec_of
        from trainables.quality.user_evaluator import load_user_features

        load_user_features(data.evaluator, spec_of(data).shape, torch.device("cpu"))


def resume_command(args, folder) -> str:
    """The command line that continues this search: its name and storage, and the flags that say where it runs."""
    import shlex

    from pipelines.tracking.target import redacted

    words = ["gantune", "search", "--resume", "--name", folder.name, "--storage", folder.storage]
    typed = {
        "--optuna-storage": args.optuna_storage and redacted(args.optuna_storage),
        "--tracking-uri": args.tracking_uri and redacted(args.tracking_uri),
        "--experiment": args.experiment,
        "--address": args.address,
    }
    for flag, value in typed.items():
        if value:
            words += [flag, value]
    if args.shared_storage:
        words.append("--shared-storage")
    return shlex.join(words)
