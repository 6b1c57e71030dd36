"""The trainer as a Ray Tune function trainable: the only module of ``trainables`` that knows Ray.

Every evaluation is reported with a checkpoint directory holding ``checkpoint.pt`` and
``samples.png``, so a paused, perturbed (PBT), failed or interrupted trial continues where it
was, and driver-side callbacks can log sample grids and the best checkpoint from the checkpoints
alone. A diverged trial reports a large finite penalty and ends itself: a NaN would leave ASHA
unable to stop it and Optuna unable to finish it.
"""

from __future__ import annotations

import gc
import math
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from ray import tune

from trainables.config import TrainConfig, config_from_dict
from trainables.data import DataBundle, load_dataset, resolve_data_root
from trainables.trainer import Trainer

CHECKPOINT_FILE = "checkpoint.pt"
SAMPLES_FILE = "samples.png"
DIVERGED_PENALTY = 1e9
# Keys a restored trial takes from its (possibly PBT-perturbed) config rather than its checkpoint.
RESTORE_OVERRIDES = ("steps", "lr_g", "lr_d", "d_steps", "g_steps")
STRING_METRICS = ("status", "evaluator_hash")

# One copy of each dataset per worker process: with actor reuse, later trials skip the load.
_DATASETS: dict[tuple[str, str | None], DataBundle] = {}


def penalty(mode: str) -> float:
    """The worst finite value of the search metric."""
    return DIVERGED_PENALTY if mode == "min" else -DIVERGED_PENALTY


def _dataset(config: TrainConfig) -> DataBundle:
    root = str(resolve_data_root(config.data_root).resolve())
    key = (config.dataset, root)
    if key not in _DATASETS:
        _DATASETS[key] = load_dataset(config.dataset, root)
    return _DATASETS[key]


def _tune_metrics(report: Mapping[str, Any], metric: str, mode: str) -> dict[str, Any]:
    """Numbers plus the status strings; a non-finite search metric is treated as divergence."""
    metrics = {k: v for k, v in report.items() if isinstance(v, (int, float)) or k in STRING_METRICS}
    diverged = report.get("status") == "diverged" or not math.isfinite(metrics.get(metric, math.nan))
    metrics["diverged"] = diverged
    if diverged:
        metrics[metric] = penalty(mode)
        metrics["status"] = "diverged"
    return metrics


def _start(config: TrainConfig) -> Trainer:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return Trainer(config, _dataset(config))
    overrides = {key: getattr(config, key) for key in RESTORE_OVERRIDES}
    with checkpoint.as_directory() as folder:
        return Trainer.from_checkpoint(Path(folder) / CHECKPOINT_FILE, overrides, _dataset(config))


def _report_with_checkpoint(trainer: Trainer, metrics: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="gantune-checkpoint-") as folder:
        trainer.save_checkpoint(Path(folder) / CHECKPOINT_FILE)
        trainer.save_samples(Path(folder) / SAMPLES_FILE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def train_gan(config: dict[str, Any], metric: str, mode: str, cpus: float) -> None:
    """Train one trial to its ``steps``; ``metric``/``mode`` pick the penalty's sign."""
    torch.set_num_threads(max(1, int(cpus)))
    trainer = None
    try:
        trainer = _start(config_from_dict(config))
        for report in trainer.reports():
            metrics = _tune_metrics(report, metric, mode)
            if metrics["diverged"]:
                tune.report(metrics)
                return
            _report_with_checkpoint(trainer, metrics)
    finally:
        # ASHA stops a trial by raising inside tune.report, and a reused actor outlives the trial:
        # release the trial's device memory whichever way it ends.
        del trainer
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
