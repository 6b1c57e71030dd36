"""``gantune export``: a trained generator as a self-contained folder for downstream code.

The source is a registered model (``models:/NAME@ALIAS``), a run (a trial's best checkpoint, or
a search's best trial), or a checkpoint file; the folder is what ``trainables.export_reader`` loads
with torch alone (see ``pipelines.registry.export_writer`` for its files).
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="write a trained generator as a self-contained folder")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="URI", help="registered model: models:/NAME@ALIAS or models:/NAME/VERSION")
    source.add_argument("--run-id", metavar="ID", help="MLflow run of a trial (its best checkpoint) or of a search")
    source.add_argument("--checkpoint", metavar="PATH", help="a checkpoint.pt, or a folder holding one")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to create")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    parser.set_defaults(func=run)


def checkpoint_path(given: str) -> Path:
    from pipelines.tracking.tags import CHECKPOINT_FILE

    path = Path(given)
    return path / CHECKPOINT_FILE if path.is_dir() else path


def run(args) -> int:
    from pipelines.registry.export_writer import record_from_checkpoint, write_export
    from trainables.config import ConfigError

    if Path(args.out).exists() and not args.overwrite:
        raise ConfigError(f"export: {args.out!r} already exists; choose a new --out folder or pass --overwrite")
    with tempfile.TemporaryDirectory(prefix="gantune-export-") as scratch:
        if args.checkpoint:
            path = checkpoint_path(args.checkpoint)
            record = record_from_checkpoint(path, {"checkpoint": str(path.resolve())})
        else:
            from pipelines.registry.model_source import record_from_model, record_from_run, tracking_client

            client = tracking_client(args.tracking_uri)
            if args.model:
                record = record_from_model(client, args.model, scratch)
            else:
                record = record_from_run(client, args.run_id, scratch)
        out = write_export(record, args.out, overwrite=args.overwrite)
    print(f"exported {record.config.dataset} generator ({record.config.loss}, {record.config.arch}) to {out}")
    return 0
