"""``gantune train``: one GAN run from a config, with progress, checkpoints, sample grids and metrics.json."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from pipelines.commands.output_folder import check_output_folder
from trainables.atomic import write_atomically
from trainables.config import ConfigError, load_config, parse_overrides

RESULT_FILES = ("checkpoint.pt", "metrics.json")
PROGRESS_KEYS = ("d_loss", "g_loss", "wasserstein", "fd", "kid", "is", "classes_covered", "js_modes", "modes_covered",
                 "high_quality")


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train one GAN from a YAML config")
    parser.add_argument("--config", help="YAML file of trainer keys (see README: Config reference)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config keys that override the file")
    parser.add_argument("--out", help="output folder (default: runs/<dataset>-<loss>-<time>)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in this output folder from its checkpoint")
    parser.set_defaults(func=run)


def _progress_line(report: dict[str, Any], total_steps: int) -> str:
    shown = [f"{key} {report[key]:.4g}" for key in PROGRESS_KEYS if isinstance(report.get(key), (int, float))]
    rate = report.get("steps_per_s")
    rate_text = f" | {rate:.1f} steps/s" if rate is not None else ""
    return f"step {report['step']}/{total_steps} [{report['status']}] " + "  ".join(shown) + rate_text


def _build_trainer(args):
    """Validate every input before the trainer (and torch) is loaded or anything is written."""
    if args.resume:
        out = Path(args.resume)
        if args.config:
            raise ConfigError("train: --resume takes the config from the checkpoint; drop --config (key=value still applies)")
        if not (out / "checkpoint.pt").is_file():
            raise ConfigError(f"train: {str(out)!r} holds no checkpoint.pt to resume from")
        from trainables.trainer import Trainer

        return Trainer.from_checkpoint(out / "checkpoint.pt", parse_overrides(args.overrides)), out
    config = load_config(args.config, args.overrides)
    out = check_output_folder("--out", args.out or f"runs/{config.dataset}-{config.loss}-{time.strftime('%Y%m%d-%H%M%S')}")
    if any((out / name).exists() for name in RESULT_FILES):
        raise ConfigError(f"train: {str(out)!r} already holds a run; pass --resume {out} to continue it or choose another --out")
    from trainables.trainer import Trainer

    return Trainer(config), out


def run(args) -> int:
    trainer, out = _build_trainer(args)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(trainer.config.to_dict(), sort_keys=False))
    print(f"training {trainer.config.loss}/{trainer.config.arch} on {trainer.config.dataset} "
          f"({trainer.device}) from step {trainer.step} into {out}", flush=True)
    report: dict[str, Any] = {**trainer.last_report, "step": trainer.step, "status": "completed"}
    with open(out / "history.jsonl", "a") as history:
        for report in trainer.reports():
            if report["status"] != "diverged":
                trainer.save_samples(out / "samples" / f"step_{report['step']:06d}.png")
                trainer.save_checkpoint(out / "checkpoint.pt")
            history.write(json.dumps(report) + "\n")
            history.flush()
            print(_progress_line(report, trainer.config.steps), flush=True)
    write_atomically(out / "metrics.json", lambda temporary: temporary.write_text(json.dumps(report, indent=2)))
    print(json.dumps(report))
    return 0
