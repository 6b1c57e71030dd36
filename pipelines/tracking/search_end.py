"""How a tracked search's runs end: each run still open gets its trial's true status, or, after a
signal, ``interrupted`` and the command that resumes the search."""

from __future__ import annotations

from typing import Callable

from pipelines.search.outcome import RUN_STATUS, end_status
from pipelines.search.trials.cohort_plan import slot_trial_status
from pipelines.tracking.tags import TAG_OPTUNA_TRIAL, TAG_RESUME, TAG_STATUS, TAG_TRIAL_ID


def close_run(client, run_id: str, status: str, extra_tags: dict[str, str] | None = None) -> None:
    """Tag the run with its status (and ``extra_tags``) and end it as MLflow's matching run status."""
    from mlflow.entities import RunTag

    tags = [RunTag(TAG_STATUS, status), *(RunTag(key, value) for key, value in (extra_tags or {}).items())]
    client.log_batch(run_id, tags=tags)
    client.set_terminated(run_id, status=RUN_STATUS[status])


def settled_slot_trials(search_name: str, study_url: str, mode: str) -> dict[int, str | None]:
    """How the search's Optuna study says each slot-trial ended, by number; None while one runs."""
    import optuna

    study = optuna.load_study(study_name=search_name, storage=optuna.storages.RDBStorage(study_url))
    return {trial.number: slot_trial_status(trial, mode) for trial in study.trials}


def close_leftovers(client, open_runs: list, trials, host_of: Callable[[str], str | None],
                    settled: Callable[[], dict[int, str | None]]) -> None:
    """End the runs still open when the search ended. A trial the search's time budget stopped is
    TERMINATED without an ``on_trial_complete``: it ended early like an ASHA-stopped one. A
    slot-trial may have ended while no driver was there to log it; the study (``settled``) knows.
    Runs of no trial this driver knows are leftovers of an earlier one: ``interrupted``."""
    by_id = {trial.trial_id: trial for trial in trials}
    study_says = settled() if any(TAG_OPTUNA_TRIAL in run.data.tags for run in open_runs) else {}
    for run in open_runs:
        trial_id = run.data.tags.get(TAG_TRIAL_ID)
        trial = by_id.get(host_of(trial_id) or trial_id)
        status = end_status(trial.last_result or {}, trial.status == "ERROR") if trial else "interrupted"
        if TAG_OPTUNA_TRIAL in run.data.tags:
            status = study_says.get(int(run.data.tags[TAG_OPTUNA_TRIAL])) or status
        close_run(client, run.info.run_id, status)


def end_interrupted(client, parent_id: str, open_runs: list, resume_command: str, signal_name: str) -> None:
    """Runs of unfinished trials and the parent end KILLED, each tagged with the command that resumes them."""
    resume = {TAG_RESUME: resume_command}
    for run in open_runs:
        close_run(client, run.info.run_id, "interrupted", resume)
    client.set_tag(parent_id, TAG_RESUME, resume_command)
    client.set_tag(parent_id, TAG_STATUS, f"interrupted by {signal_name}")
    client.set_terminated(parent_id, status="KILLED")
