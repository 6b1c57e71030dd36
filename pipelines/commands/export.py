"""``gantune export``: a trained generator as a self-contained folder for downstream code.

The source is a registered model (``models:/NAME@ALIAS``), a run (a trial's best checkpoint, or
a search's best trial), or a checkpoint file; the folder is what ``trainables.export_reader``
loads with torch alone (see ``pipelines.registry.export_writer`` for its files).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pipelines.commands.flags import add_tracking_uri


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="write a trained generator as a self-contained folder")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="URI", help="registered model: models:/NAME@ALIAS or models:/NAME/VERSION")
    source.add_argument("--run-id", metavar="ID", help="MLflow run of a trial (its best checkpoint) or of a search")
    source.add_argument("--checkpoint", metavar="PATH", help="a checkpoint.pt, or a folder holding one")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to create")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    add_tracking_uri(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from pipelines.output_folder import check_output_folder
    from pipelines.registry.export_writer import check_export_target, write_export
    from pipelines.registry.model_source import record_from_source

    check_output_folder("--out", args.out)
    check_export_target(Path(args.out), args.overwrite)
    with tempfile.TemporaryDirectory(prefix="gantune-export-") as scratch:
        record = record_from_source(args.checkpoint, args.model, args.run_id, args.tracking_uri, scratch)
        out = write_export(record, args.out, overwrite=args.overwrite)
    print(f"exported {record.config.dataset} generator ({record.config.loss}, {record.config.arch}) to {out}")
    return 0
