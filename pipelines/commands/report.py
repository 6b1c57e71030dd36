"""``gantune report``: draw a search's report from the MLflow store (see ``pipelines.report.build``)."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pipelines.commands.flags import add_search_choice, add_tracking_uri
from trainables.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="draw a search's report from the MLflow store; log it to its parent run")
    add_search_choice(parser)
    parser.add_argument("--out", metavar="DIR", help="folder to write the report to (default: a new temporary folder)")
    parser.add_argument("--data-root", metavar="DIR",
                        help="torchvision data root for the real images beside the samples (default: $GANTUNE_DATA_ROOT)")
    add_tracking_uri(parser)
    parser.set_defaults(func=run)


@contextmanager
def report_folder(out: Path | None) -> Iterator[Path]:
    """``out`` (made if missing) or a new temporary folder; what this made is removed again if the report fails."""
    from pipelines.commands.checks import removed_if_failed

    if out is not None:
        with removed_if_failed(out):
            out.mkdir(parents=True, exist_ok=True)
            yield out
        return
    temporary = Path(tempfile.mkdtemp(prefix="gantune-report-"))
    try:
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def run(args) -> int:
    from pipelines.output_folder import check_output_folder
    from pipelines.report.build import ARTIFACT_PATH, build_report
    from pipelines.tracking.lookup import find_search, tracking_client

    out = check_output_folder("--out", args.out) if args.out else None
    if args.data_root is not None and not Path(args.data_root).expanduser().is_dir():
        raise UsageError(f"--data-root {args.data_root} is not a folder; give the folder that holds torchvision's "
                         "files (e.g. MNIST/raw), or leave it out")
    client = tracking_client(args.tracking_uri)
    parent = find_search(client, args.experiment, args.search)
    with report_folder(out) as folder:
        page = build_report(client, parent, folder, args.data_root)
    print(f"report of search {parent.info.run_name} written to {page} and logged to run {parent.info.run_id} "
          f"under {ARTIFACT_PATH}/")
    return 0
