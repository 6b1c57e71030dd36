"""``gantune report``: what a search found and what it cost, drawn from the MLflow store alone.

The report is an HTML page with PNG figures: the best metric so far against trials and
trial-seconds per loss, Optuna's parameter importances, the metric against the most important
parameters, the best trials' samples beside real data, and the trials and trial-seconds by status.
It is written to a folder and logged to the search's parent run under ``report/``. Every tracked
search makes it when it ends; the command makes it again for any search the store holds.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from trainables.config import ConfigError

ARTIFACT_PATH = "report"
REPORT_FILE = "report.html"


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="draw a search's report from the MLflow store; log it to its parent run")
    parser.add_argument("--experiment", required=True, metavar="NAME", help="MLflow experiment of the search")
    parser.add_argument("--search", metavar="RUN_ID", help="parent run of the search (default: the latest one)")
    parser.add_argument("--out", metavar="DIR", help="folder to write the report to (default: a new temporary folder)")
    parser.add_argument("--data-root", metavar="DIR",
                        help="torchvision data root for the real images beside the samples (default: $GANTUNE_DATA_ROOT)")
    parser.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    parser.set_defaults(func=run)


def build_report(client, parent, out: Path, data_root: str | None = None) -> Path:
    """Write the report of the search whose parent run is ``parent`` into ``out`` and log it to that run."""
    from pipelines import report_sections as sections
    from pipelines.report_html import write_html
    from pipelines.report_stats import ranked
    from pipelines.report_store import read_search
    from pipelines.report_study import importances, rebuild_study

    search = read_search(client, parent)
    study = rebuild_study(search.trials, search.mode)
    varied = sorted({name for trial in study.trials for name in trial.params})
    parts = [
        sections.progress_section(search, out),
        *sections.importance_sections(search, study, importances(study, search.metric), out),
        sections.samples_section(client, search, varied, data_root, out),
        sections.status_section(search, out),
    ]
    best = ranked(search.trials, search.mode, 1)
    summary = [
        ("search", search.name),
        ("experiment", search.experiment),
        ("parent run", search.run_id),
        ("dataset", search.dataset),
        ("metric", f"{search.metric} ({'lower' if search.mode == 'min' else 'higher'} is better)"),
        ("trials", str(len(search.trials))),
        ("best", f"{best[0].best_value:.4g} (trial {best[0].trial_id}, {best[0].loss})" if best else "-"),
        ("trial-seconds", f"{sum(trial.seconds for trial in search.trials):,.0f}"),
    ]
    page = write_html(out / REPORT_FILE, f"Search {search.name}", summary, parts)
    for path in [page, *(out / part.figure for part in parts if part.figure)]:
        client.log_artifact(search.run_id, str(path), ARTIFACT_PATH)
    return page


def report_after_search(tracking, folder) -> None:
    """Log the report of the search in ``folder`` that just ended; a failure is one line, never an error.

    The search's results are already safe in the store, so a report that cannot be drawn must not
    turn a finished search into a failed one: the line says how to make it later.
    """
    from pipelines.run_tags import PARENT_RUN_FILE

    run_id = None
    try:
        from mlflow import MlflowClient

        run_id = json.loads(folder.read_text(PARENT_RUN_FILE))["parent_run_id"]
        client = MlflowClient(tracking.uri)
        with tempfile.TemporaryDirectory(prefix="gantune-report-") as out:
            build_report(client, client.get_run(run_id), Path(out))
        print(f"report logged to run {run_id} under {ARTIFACT_PATH}/ at {tracking.uri}")
    except Exception as err:  # whatever went wrong, the search itself succeeded
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        search = f" --search {run_id}" if run_id else ""
        print(f"the search report could not be made ({reason}); make it later with `gantune report "
              f"--experiment {tracking.experiment}{search} --tracking-uri {tracking.uri}`")


def run(args) -> int:
    from pipelines.model_source import tracking_client
    from pipelines.output_folder import check_output_folder
    from pipelines.report_store import find_search
    from pipelines.tracking_target import check_reachable

    out = check_output_folder("--out", args.out) if args.out else None
    client = tracking_client(args.tracking_uri)
    check_reachable(client.tracking_uri)
    parent = find_search(client, args.experiment, args.search)
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="gantune-report-"))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {args.out} cannot be made: {err.strerror}") from None
    page = build_report(client, parent, out, args.data_root)
    print(f"report of search {parent.info.run_name} written to {page} and logged to run {parent.info.run_id} "
          f"under {ARTIFACT_PATH}/")
    return 0
