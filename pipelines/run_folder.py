"""The folder of one ``gantune train`` run: where its reports go, and the checks made before it starts.

``RUN/checkpoint.pt`` (the latest, what ``--resume`` continues), ``RUN/samples/step_NNNNNN.png``
(one picture per evaluation), ``RUN/history.jsonl`` (one report per line, appended as they come,
so a crash loses nothing already reported), ``RUN/config.yaml`` and, at the end,
``RUN/metrics.json`` (the last report).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

from pipelines.output_folder import check_output_folder
from trainables.atomic import write_atomically
from trainables.core.checkpoint import CHECKPOINT_FILE
from trainables.core.config import TrainConfig, load_config, parse_overrides
from trainables.core.report_loop import ReportFiles
from trainables.errors import UsageError

METRICS_FILE = "metrics.json"
PROGRESS_KEYS = ("d_loss", "g_loss", "wasserstein", "fd", "kid", "is", "classes_covered", "js_modes", "modes_covered",
                 "high_quality")


def progress_line(report: dict[str, Any], total_steps: int) -> str:
    shown = [f"{key} {report[key]:.4g}" for key in PROGRESS_KEYS if isinstance(report.get(key), (int, float))]
    rate = report.get("steps_per_s")
    rate_text = f" | {rate:.1f} steps/s" if rate is not None else ""
    return f"step {report['step']}/{total_steps} [{report['status']}] " + "  ".join(shown) + rate_text


class RunFolder:
    """A ``ReportSink`` that writes each report into the run folder and prints its progress line."""

    def __init__(self, path: Path, total_steps: int):
        self.path = path
        self.total_steps = total_steps

    def start(self, config: TrainConfig) -> None:
        (self.path / "samples").mkdir(parents=True, exist_ok=True)
        (self.path / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))

    @contextmanager
    def files(self, report: dict[str, Any]) -> Iterator[ReportFiles]:
        yield ReportFiles(self.path / CHECKPOINT_FILE, self.path / "samples" / f"step_{report['step']:06d}.png")

    def hand_on(self, report: dict[str, Any], files: ReportFiles | None) -> None:
        with open(self.path / "history.jsonl", "a") as history:
            history.write(json.dumps(report) + "\n")
        print(progress_line(report, self.total_steps), flush=True)

    def finish(self, last: dict[str, Any]) -> None:
        write_atomically(self.path / METRICS_FILE, lambda temporary: temporary.write_text(json.dumps(last, indent=2)))


def new_run(config_file: str | None, overrides: Sequence[str], out: str | None) -> tuple[TrainConfig, Path]:
    """The config and folder of a new run, checked before torch loads or anything is written."""
    config = load_config(config_file, overrides)
    path = check_output_folder("--out", out or f"runs/{config.dataset}-{config.loss}-{time.strftime('%Y%m%d-%H%M%S')}")
    if any((path / name).exists() for name in (CHECKPOINT_FILE, METRICS_FILE)):
        raise UsageError(f"--out {path} already holds a run; pass --resume {path} to continue it or choose "
                         "another --out")
    return config, path


def resumed_run(folder: str, config_file: str | None, overrides: Sequence[str]) -> tuple[Path, dict[str, Any]]:
    """The checkpoint to continue and the overrides to apply to it; the folder must take the new reports."""
    if config_file:
        raise UsageError("--resume takes the config from the checkpoint; drop --config (key=value still applies)")
    path = Path(folder).expanduser()
    if not path.exists():
        raise UsageError(f"--resume {folder} does not exist; give the --out folder of an earlier run")
    if path.is_file():
        raise UsageError(f"--resume {folder} is a file; give the run folder that holds its {CHECKPOINT_FILE}")
    checkpoint = path / CHECKPOINT_FILE
    if not checkpoint.is_file():
        raise UsageError(f"--resume {folder} holds no {CHECKPOINT_FILE}; give the --out folder of an earlier run")
    check_output_folder("--resume", path)
    return checkpoint, parse_overrides(overrides)
