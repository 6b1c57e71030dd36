"""The trainer as a Ray Tune function trainable: one trial, one trainer.

Every evaluation is reported with a checkpoint directory holding ``checkpoint.pt`` and
``samples.png``, so a paused, perturbed (PBT), failed or interrupted trial continues where it
was, and driver-side callbacks can log sample grids and the best checkpoint from the checkpoints
alone. A diverged trial reports the metric's worst finite value and ends itself: a NaN would
leave ASHA unable to stop it and Optuna unable to finish it.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import tempfile
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from ray import tune

from trainables.core.checkpoint import CHECKPOINT_FILE, RESTORE_NOTE
from trainables.core.config import TrainConfig, config_from_dict
from trainables.core.report_loop import ReportFiles, run_reports
from trainables.core.trainer import Trainer
from trainables.data.datasets import dataset_spec, load_data
from trainables.data.loading import resolve_data_root
from trainables.data.records import DataBundle
from trainables.errors import UnreadableCheckpoint
from trainables.quality.objectives import worst_value

STRING_METRICS = ("status", "evaluator_hash")

# One copy of each dataset per worker process: with actor reuse, later trials skip the load.
_DATASETS: dict[tuple, DataBundle] = {}


def dataset_for(config: TrainConfig) -> DataBundle:
    """The trial's dataset; a built-in one from the data root the trial resolves (the driver's
    ``$GANTUNE_DATA_ROOT`` travels with it), the user's files from the path the preset pinned."""
    if not dataset_spec(config.dataset).from_files:
        config = dataclasses.replace(config, data_root=str(resolve_data_root(config.data_root).resolve()))
    key = (config.dataset, config.data_root, config.image_size, config.channels, config.num_classes)
    if key not in _DATASETS:
        _DATASETS[key] = load_data(config)
    return _DATASETS[key]


def tune_metrics(report: Mapping[str, Any], metric: str, mode: str) -> dict[str, Any]:
    """Numbers plus the status strings; a non-finite search metric is treated as divergence."""
    metrics = {k: v for k, v in report.items() if isinstance(v, (int, float)) or k in STRING_METRICS}
    diverged = report.get("status") == "diverged" or not math.isfinite(metrics.get(metric, math.nan))
    metrics["diverged"] = diverged
    if diverged:
        metrics[metric] = worst_value(mode)
        metrics["status"] = "diverged"
    return metrics


class TuneSink:
    """Reports go to Tune, each with a fresh checkpoint directory that Tune then takes over.

    ``note`` (how the trial started, when that is worth saying) rides on the first report.
    """

    def __init__(self, metric: str, mode: str, note: str | None = None):
        self.metric = metric
        self.mode = mode
        self.note = note

    @contextmanager
    def files(self, report: dict[str, Any]) -> Iterator[ReportFiles]:
        with tempfile.TemporaryDirectory(prefix="gantune-checkpoint-") as folder:
            yield ReportFiles.in_folder(folder)

    def hand_on(self, report: dict[str, Any], files: ReportFiles | None) -> None:
        checkpoint = tune.Checkpoint.from_directory(files.checkpoint.parent) if files else None
        metrics = tune_metrics(report, self.metric, self.mode)
        if self.note:
            metrics[RESTORE_NOTE], self.note = self.note, None
        tune.report(metrics, checkpoint=checkpoint)


def checkpoints_newest_first() -> list[tune.Checkpoint]:
    """The trial's checkpoint to restore, then every older one it kept (Tune names them in order)."""
    latest = tune.get_checkpoint()
    if latest is None:
        return []
    import pyarrow.fs

    trial_folder, _, name = latest.path.rstrip("/").rpartition("/")
    entries = latest.filesystem.get_file_info(pyarrow.fs.FileSelector(trial_folder))
    older = sorted(
        (entry.path for entry in entries
         if entry.type == pyarrow.fs.FileType.Directory and entry.base_name.startswith("checkpoint_")
         and entry.base_name < name),
        reverse=True,
    )
    return [latest, *(tune.Checkpoint(path, filesystem=latest.filesystem) for path in older)]


def _start(config: dict[str, Any]) -> tuple[Trainer, str | None]:
    """A new trainer, or the trial's newest readable checkpoint with its (possibly PBT-perturbed)
    config applied; with a note saying which checkpoint, when the newest could not be read."""
    trial_config = config_from_dict(config)
    data = dataset_for(trial_config)
    unreadable: list[str] = []
    for checkpoint in checkpoints_newest_first():
        try:
            with checkpoint.as_directory() as folder:
                trainer = Trainer.from_checkpoint(Path(folder) / CHECKPOINT_FILE, config, data)
        except UnreadableCheckpoint as err:
            unreadable.append(f"{Path(checkpoint.path).name} ({err})")
            continue
        note = (f"{'; '.join(unreadable)} unreadable: continued from {Path(checkpoint.path).name} at step {trainer.step}"
                if unreadable else None)
        return trainer, note
    note = f"{'; '.join(unreadable)} unreadable and no older checkpoint: started again from step 0" if unreadable else None
    return Trainer(trial_config, data), note


def train_gan(config: dict[str, Any], metric: str, mode: str, cpus: float) -> None:
    """Train one trial to its ``steps``; ``metric``/``mode`` pick the divergence penalty's sign."""
    torch.set_num_threads(max(1, int(cpus)))
    trainer = None
    try:
        trainer, note = _start(config)
        if note:
            print(f"gantune trial: {note}", flush=True)
        run_reports(trainer, TuneSink(metric, mode, note))
    except BaseException as stop:
        # ASHA stops a trial by raising inside tune.report: the traceback keeps run_reports' frame,
        # and with it the trainer, alive unless its frames are cleared.
        traceback.clear_frames(stop.__traceback__)
        raise
    finally:
        del trainer
        release_memory()


def release_memory() -> None:
    """A reused actor outlives the trial: release the trial's memory whichever way it ended."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
