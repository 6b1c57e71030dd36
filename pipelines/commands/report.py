"""``gantune report``: draw a search's report from the MLflow store (see ``pipelines.report.build``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

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


def run(args) -> int:
    from pipelines.output_folder import check_output_folder
    from pipelines.report.build import ARTIFACT_PATH, build_report
    from pipelines.tracking.lookup import find_search, tracking_client
    from pipelines.tracking.target import check_reachable

    out = check_output_folder("--out", args.out) if args.out else None
    client = tracking_client(args.tracking_uri)
    check_reachable(client.tracking_uri)
    parent = find_search(client, args.experiment, args.search)
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="gantune-report-"))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--out {args.out} cannot be made: {err.strerror}") from None
    page = build_report(client, parent, out, args.data_root)
    print(f"report of search {parent.info.run_name} written to {page} and logged to run {parent.info.run_id} "
          f"under {ARTIFACT_PATH}/")
    return 0
