"""A search's report: what it found and what it cost, drawn from the MLflow store alone.

The report is an HTML page with PNG figures: the best metric so far against trials and
trial-seconds per loss, Optuna's parameter importances, the metric against the most important
parameters, the best trials' samples beside real data, and the trials and trial-seconds by status.
It is written to a folder and logged to the search's parent run under ``report/``. Every tracked
search makes it when it ends (``report_after_search``); ``gantune report`` makes it again for any
search the store holds.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

ARTIFACT_PATH = "report"
REPORT_FILE = "report.html"


def build_report(client, parent, out: Path, data_root: str | None = None) -> Path:
    """Write the report of the search whose parent run is ``parent`` into ``out`` and log it to that run."""
    from pipelines.report import sections
    from pipelines.report.page import write_html
    from pipelines.report.stats import ranked
    from pipelines.report.store import read_search
    from pipelines.report.study import importances, rebuild_study

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
    from pipelines.tracking.tags import PARENT_RUN_FILE
    from pipelines.tracking.target import redacted

    run_id = None
    try:
        from mlflow import MlflowClient

        run_id = json.loads(folder.read_text(PARENT_RUN_FILE))["parent_run_id"]
        client = MlflowClient(tracking.uri)
        with tempfile.TemporaryDirectory(prefix="gantune-report-") as out:
            build_report(client, client.get_run(run_id), Path(out))
        print(f"report logged to run {run_id} under {ARTIFACT_PATH}/ at {redacted(tracking.uri)}")
    except Exception as err:  # whatever went wrong, the search itself succeeded
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        search = f" --search {run_id}" if run_id else ""
        print(f"the search report could not be made ({reason}); make it later with `gantune report "
              f"--experiment {tracking.experiment}{search} --tracking-uri {redacted(tracking.uri)}`")
