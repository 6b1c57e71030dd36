"""The sections of a search report: each draws its figure into the report folder and says what it shows.

A section that cannot be drawn (no trial measured the metric, too few trials for importances, no
data root for the real images) becomes a one-line note instead, so a report is always made.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pipelines.report import figures
from pipelines.report.page import Section
from pipelines.report.stats import progress_curves, ranked, saved_seconds, status_rows
from pipelines.report.store import SearchRecord, TrialRecord, download_samples
from pipelines.report.study import Importances, typed_values
from trainables.errors import UsageError

TOP_TRIALS = 5
TOP_PARAMS = 3
PROGRESS_FILE, STATUS_FILE, IMPORTANCES_FILE, SLICES_FILE, SAMPLES_FILE = (
    "progress.png", "status.png", "importances.png", "slices.png", "samples.png",
)


def _short(text: str) -> str:
    """A logged param as a reader wants it: floats to 3 significant digits, anything else as is."""
    value, = typed_values([text])
    return f"{value:.3g}" if isinstance(value, float) else text


def progress_section(search: SearchRecord, out: Path) -> Section:
    title = f"Best {search.metric} so far"
    if not any(trial.best_value is not None for trial in search.trials):
        return Section(title, notes=[f"No trial measured {search.metric}, so there is nothing to plot."])
    text = (f"The best {search.metric} found against the trials run and against the trial-seconds they used, "
            "one line per loss (the comparison at equal budget of Lucic et al. 2018, \"Are GANs created equal?\"). "
            "Trials count in the order they started; a trial's seconds are its run's duration in the store.")
    figures.draw_progress(progress_curves(search.trials, search.mode), search.metric, search.mode, out / PROGRESS_FILE)
    return Section(title, text, PROGRESS_FILE)


def importance_sections(search: SearchRecord, study, found: Importances, out: Path) -> list[Section]:
    """The importances and the metric against the most important params: two sections."""
    title, slices_title = "Parameter importances", "The metric against the most important parameters"
    if found.note:
        return [Section(title, notes=[found.note]),
                Section(slices_title, notes=["Not drawn: it needs the parameter importances."])]
    text = (f"Optuna's PED-ANOVA importance of each parameter for reaching the best {found.target_quantile:.0%} "
            f"of the {len(study.trials)} trials with a {search.metric}, from an Optuna study rebuilt from the "
            "params each trial's run logged. A conditional parameter is judged among the trials that drew it; "
            "parameters that never varied are left out.")
    figures.draw_importances(study, found.evaluator, search.metric, out / IMPORTANCES_FILE)
    table = [("parameter", "importance"), *((name, f"{value:.3f}") for name, value in found.values.items())]
    top = list(found.values)[:TOP_PARAMS]  # most important first
    slices_text = (f"Each trial's best {search.metric} against the {len(top)} most important parameters "
                   "(darker: later trials).")
    figures.draw_slices(study, top, search.metric, out / SLICES_FILE)
    return [Section(title, text, IMPORTANCES_FILE, table), Section(slices_title, slices_text, SLICES_FILE)]


def _real_panel(search: SearchRecord, data_root: str | None, scratch: Path) -> tuple[Path | None, str | None]:
    """The real-data picture, or why it is left out."""
    from trainables.data.datasets import DATASETS

    if search.dataset not in DATASETS:
        return None, f"Real data is not shown: the search records no known dataset ({search.dataset!r})."
    from trainables.core.config import FILE_KEYS
    from trainables.core.train_config import TrainConfig

    roots = {trial.params["data_root"] for trial in search.trials if "data_root" in trial.params}
    root = data_root or (roots.pop() if len(roots) == 1 else None)
    shape = {key: int(value) for key, value in (search.trials[0].params if search.trials else {}).items()
             if key in FILE_KEYS}
    try:
        data = TrainConfig(dataset=search.dataset, data_root=root, **shape)
        return figures.write_real_picture(data, scratch / "real.png"), None
    except (UsageError, OSError) as err:
        return None, f"Real data is not shown: {err}"


def _trial_row(rank: int, trial: TrialRecord, varied: list[str]) -> tuple[str, ...]:
    params = ", ".join(f"{name}={_short(trial.params[name])}" for name in varied if name in trial.params)
    return (str(rank), trial.trial_id, trial.loss, trial.status, f"{trial.best_value:.4g}", str(trial.best_step),
            params, trial.run_id)


def samples_section(client, search: SearchRecord, varied: list[str], data_root: str | None, out: Path) -> Section:
    """The top trials' samples at their best step beside real data, and a table of those trials."""
    title = "The best trials"
    top = ranked(search.trials, search.mode, TOP_TRIALS)
    if not top:
        return Section(title, notes=[f"No trial measured {search.metric}."])
    notes = []
    with tempfile.TemporaryDirectory(prefix="gantune-report-") as scratch:
        real, note = _real_panel(search, data_root, Path(scratch))
        panels = [("real data", real)] if real else []
        notes += [note] if note else []
        for rank, trial in enumerate(top, start=1):
            picture = download_samples(client, trial, scratch)
            if picture is None:
                notes.append(f"Trial {trial.trial_id} logged no sample picture.")
                continue
            panels.append((f"#{rank} {trial.trial_id}\n{trial.loss}, {search.metric} {trial.best_value:.4g}", picture))
        if panels:
            figures.draw_samples(panels, out / SAMPLES_FILE)
    table = [("rank", "trial", "loss", "status", f"best {search.metric}", "at step", "varied params", "run"),
             *(_trial_row(rank, trial, varied) for rank, trial in enumerate(top, start=1))]
    text = "Samples of the best trials, each at the step of its best value, beside real data."
    return Section(title, text, SAMPLES_FILE if panels else None, table, notes)


def status_section(search: SearchRecord, out: Path) -> Section:
    """Trials and trial-seconds by how they ended, and what early stopping saved."""
    rows = status_rows(search.trials)
    saved = saved_seconds(search.trials, search.max_steps)
    figures.draw_status(rows, saved, out / STATUS_FILE)
    spent = sum(row.seconds for row in rows)
    table = [("status", "trials", "trial-seconds", "share of seconds"),
             *((row.status, str(row.count), f"{row.seconds:,.0f}", f"{row.seconds / spent:.0%}" if spent else "-")
               for row in rows)]
    notes = []
    if saved:
        notes.append(f"Early stopping saved about {saved:,.0f} trial-seconds, {saved / (spent + saved):.0%} of what "
                     f"running every trial to step {search.max_steps} would have taken; each stopped trial's "
                     "remaining steps are counted at its own pace.")
    text = "How the trials ended (completed, stopped early by the scheduler, diverged, errored) and the time each used."
    return Section("Trials by status", text, STATUS_FILE, table, notes)
