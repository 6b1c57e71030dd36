"""SIGTERM and SIGINT stop a running search cleanly, and ``--resume`` finishes it, even when a
trial's newest checkpoint was truncated meanwhile (a full disk, a node lost mid-write).

The search runs as a real ``gantune search`` process logging to a real MLflow server; the signal
goes to the driver's process alone, as ``timeout`` sends it.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
from pathlib import Path

import optuna
import yaml
from faults_support import CLI, PRESET, REPO_ROOT, a_trial_reported, interrupt, trial_rows

from mlflow import MlflowClient
from pipelines.tracking.tags import TAG_PARENT, TAG_RESUME, TAG_ROLE, TAG_STATUS, TAG_TRIAL_ID
from trainables.core.checkpoint import CHECKPOINT_FILE, RESTORE_NOTE, load_checkpoint


def one_finished_one_three_reports_in(experiment: Path) -> bool:
    """A finished trial, and a running one with an older checkpoint behind its newest."""
    trials = trial_rows(experiment).values()
    return (any(rows[-1]["status"] == "completed" for rows in trials)
            and any(len(rows) >= 3 and rows[-1]["status"] == "running" for rows in trials))


def truncate_newest_checkpoint(experiment: Path, trial_id: str, rows: list[dict]) -> tuple[str, int]:
    """Cut the trial's newest checkpoint in half; the name and step of the one before it."""
    trial_folder = next(p.parent for p in experiment.glob("*/result.json") if f"_{trial_id}_" in p.parent.name)
    # The checkpoint of the last report Tune recorded is the one it restores (a newer folder may
    # hold a report that never reached the driver).
    newest = trial_folder / rows[-1]["checkpoint_dir_name"]
    previous = max(folder for folder in trial_folder.glob("checkpoint_*") if folder.name < newest.name)
    previous_step = load_checkpoint(previous / CHECKPOINT_FILE)["step"]  # Tune may delete it once resumed
    weights = newest / CHECKPOINT_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return previous.name, previous_step

def search_runs(uri: str, name: str):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [run for run in runs if run.data.tags.get(TAG_ROLE) == "search"]
    children = [run for run in runs if run.data.tags.get(TAG_PARENT)]
    return parents, children


def test_sigterm_ends_every_run_and_resume_finishes_the_search(mlflow_server, tmp_path):
    code, lines = interrupt(signal.SIGTERM, tmp_path, "term", "--tracking-uri", mlflow_server,
                            ready=one_finished_one_three_reports_in)
    output = "\n".join(lines)
    assert code == 143, output[-3000:]
    resume = lines[-1]
    assert resume.startswith("gantune search --resume --name term"), output[-3000:]
    assert "Traceback" not in output and "core dumped" not in output.lower()

    (parent,), children = search_runs(mlflow_server, "term")
    assert parent.info.status == "KILLED" and parent.data.tags[TAG_RESUME] == resume
    assert all(run.info.status != "RUNNING" for run in children)
    interrupted = [run for run in children if run.info.status == "KILLED"]
    assert interrupted and all(run.data.tags[TAG_RESUME] == resume for run in interrupted)
    assert all(run.data.tags[TAG_STATUS] == "interrupted" for run in interrupted)
    experiment = tmp_path / "term" / "tune"
    finished_before = {tid: rows for tid, rows in trial_rows(experiment).items() if rows[-1]["status"] == "completed"}
    assert finished_before
    running_before = {tid: rows for tid, rows in trial_rows(experiment).items() if rows[-1]["status"] == "running"}
    cut_id, cut_rows = next((tid, rows) for tid, rows in running_before.items() if len(rows) >= 3)
    previous, previous_step = truncate_newest_checkpoint(experiment, cut_id, cut_rows)

    resumed = subprocess.run([*CLI, *shlex.split(resume)[1:]], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]

    trials = trial_rows(experiment)
    assert len(trials) == 4 and all(rows[-1]["status"] == "completed" for rows in trials.values())
    for tid, rows in finished_before.items():
        assert trials[tid] == rows  # a finished trial did not run again
    for tid, rows in running_before.items():
        if tid != cut_id:
            steps = [row["step"] for row in trials[tid]]
            # Continued from its checkpoint, not from step 0.
            assert steps == sorted(set(steps)) and rows[-1]["step"] in steps
    # The truncated trial went on from the checkpoint before, so the cut one's steps are trained
    # again, and both the log and its first new report say so.
    assert f"unreadable: continued from {previous}" in resumed.stdout, resumed.stdout[-3000:]
    first_new = trials[cut_id][len(cut_rows)]
    assert previous in first_new[RESTORE_NOTE]
    eval_every = yaml.safe_load(PRESET.read_text())["params"]["eval_every"]
    assert first_new["step"] == previous_step + eval_every <= cut_rows[-1]["step"]
    (parent,), children = search_runs(mlflow_server, "term")
    assert parent.info.status == "FINISHED" and TAG_RESUME not in parent.data.tags
    assert sorted(run.data.tags[TAG_TRIAL_ID] for run in children) == sorted(trials)  # one run per trial
    assert all(run.info.status == "FINISHED" and TAG_RESUME not in run.data.tags for run in children)
    study = optuna.load_study(study_name="term", storage=f"sqlite:///{tmp_path / 'term' / 'optuna.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4


def test_sigint_ends_every_run_with_the_resume_command_last(mlflow_server, tmp_path):
    code, lines = interrupt(signal.SIGINT, tmp_path, "int", "--tracking-uri", mlflow_server, ready=a_trial_reported)
    assert code == 130, "\n".join(lines)[-3000:]
    assert lines[-1].startswith("gantune search --resume --name int")
    (parent,), children = search_runs(mlflow_server, "int")
    assert parent.info.status == "KILLED"
    assert children and all(run.info.status in ("FINISHED", "KILLED") for run in children)
