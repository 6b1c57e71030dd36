"""``gantune train``: one GAN run from a config, with progress, checkpoints, sample grids and metrics.json."""

from __future__ import annotations

import json
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train one GAN from a YAML config")
    parser.add_argument("--config", help="YAML file of trainer keys (see README: Config reference)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config keys that override the file")
    parser.add_argument("--out", help="output folder (default: runs/<dataset>-<loss>-<time>)")
    parser.add_argument("--resume", metavar="DIR", help="continue the run in this output folder from its checkpoint")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pipelines.commands.checks import check_not_a_folder, removed_if_failed
    from pipelines.run_folder import RunFolder, new_run, resumed_run
    from trainables.core.report_loop import run_reports
    from trainables.core.trainer import Trainer
    from trainables.data.loading import resolve_data_root

    if args.resume:
        checkpoint, overrides = resumed_run(args.resume, args.config, args.overrides)
        with removed_if_failed(resolve_data_root(overrides.get("data_root"))):
            trainer, out = Trainer.from_checkpoint(checkpoint, overrides), Path(args.resume)
    else:
        check_not_a_folder("--config", args.config)
        config, out = new_run(args.config, args.overrides, args.out)
        with removed_if_failed(resolve_data_root(config.data_root)):
            trainer = Trainer(config)
    folder = RunFolder(out, trainer.config.steps)
    folder.start(trainer.config)
    print(f"training {trainer.config.loss}/{trainer.config.arch} on {trainer.config.dataset} "
          f"({trainer.device}) from step {trainer.step} into {out}", flush=True)
    last = run_reports(trainer, folder)
    folder.finish(last)
    print(json.dumps(last))
    return 0
