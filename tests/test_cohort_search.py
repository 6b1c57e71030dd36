"""``gantune search --cohort K`` on a real local Ray: slot-trials are the search's trials, in Optuna,
MLflow, ``best.json`` and every command that reads them, also across a killed driver's ``--resume``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml
from checks import TEST_PRESETS, runs_by_trial

from pipelines.cli import main
from pipelines.tracking.tags import TAG_ROLE, TAG_STATUS, TAG_TRIAL_ID
from trainables.core.checkpoint import load_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
PRESET = yaml.safe_load((TEST_PRESETS / "cohort_grid25.yaml").read_text())
TRIALS, EVAL_EVERY = PRESET["budget"]["num_samples"], PRESET["params"]["eval_every"]
PROGRESS = re.compile(r"(\d+)/\d+ done \| running (\d+)")


def trial_runs(client, experiment_name: str) -> dict[str, object]:
    experiment = client.get_experiment_by_name(experiment_name)
    return runs_by_trial(client.search_runs([experiment.experiment_id], f"tags.`{TAG_ROLE}` = 'trial'"))


def curve(client, run) -> list[tuple[int, float]]:
    return [(point.step, point.value) for point in client.get_metric_history(run.info.run_id, "js_modes")]


@pytest.fixture(scope="module")
def cohort_search(tmp_path_factory) -> dict:
    """A cohort search killed (SIGKILL) while slot-trials run and after some ended, then resumed."""
    from mlflow import MlflowClient

    storage = tmp_path_factory.mktemp("cohort")
    folder = storage / "cohorts"
    command = [sys.executable, "-m", "pipelines.cli", "search", "--storage", str(storage), "--name", "cohorts"]
    driver = subprocess.Popen([*command, "--config", str(TEST_PRESETS / "cohort_grid25.yaml"), "--cohort", "2"],
                              cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              start_new_session=True)
    try:
        for line in driver.stdout:
            progress = PROGRESS.search(line)
            if progress and int(progress[1]) >= TRIALS // 2 and int(progress[2]) > 0:
                break
        os.killpg(driver.pid, signal.SIGKILL)
    finally:
        driver.kill()
        driver.wait()
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    ended_before = {trial_id: curve(client, run) for trial_id, run in trial_runs(client, "cohorts").items()
                    if run.info.status != "RUNNING"}
    resumed = subprocess.run([*command, "--resume"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return {"folder": folder, "client": client, "ended_before": ended_before, "output": resumed.stdout}


def test_every_slot_trial_is_an_optuna_trial_that_ended(cohort_search):
    study = optuna.load_study(study_name="cohorts", storage=f"sqlite:///{cohort_search['folder'] / 'optuna.db'}")
    states = Counter(trial.state.name for trial in study.trials)
    # A trial its host had started after the checkpoint the resume continued from was lost with
    # the killed process: it is FAIL and another took its place.
    assert states["COMPLETE"] + states["PRUNED"] == TRIALS and states["PRUNED"] > 0, states
    assert set(states) <= {"COMPLETE", "PRUNED", "FAIL"}, states


def test_every_slot_trial_has_one_child_run_that_ended_with_its_status(cohort_search):
    client = cohort_search["client"]
    runs = trial_runs(client, "cohorts")
    study = optuna.load_study(study_name="cohorts", storage=f"sqlite:///{cohort_search['folder'] / 'optuna.db'}")
    ran = [trial for trial in study.trials if trial.state.name in ("COMPLETE", "PRUNED")]
    expected = {"COMPLETE": {"completed", "diverged"}, "PRUNED": {"early_stopped"}}
    statuses = Counter()
    for run in runs.values():
        assert run.info.status != "RUNNING"
        statuses[run.data.tags[TAG_STATUS]] += 1
    finished = [run for run in runs.values() if run.data.tags[TAG_STATUS] in ("completed", "early_stopped", "diverged")]
    assert len(finished) == len(ran) == TRIALS
    for trial in ran:
        run = next(run for run in finished if run.data.tags[TAG_TRIAL_ID].endswith(f"_t{trial.number:04d}"))
        assert run.data.tags[TAG_STATUS] in expected[trial.state.name], (trial.number, run.data.tags[TAG_STATUS])
        steps = [step for step, _ in curve(client, run)]
        assert steps == sorted(set(steps)) and steps[0] == EVAL_EVERY  # every evaluation once
        assert run.data.params["loss"] == str(trial.params.get("loss", run.data.params["loss"]))
        artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
        assert {"checkpoint", "samples"} <= artifacts


def test_each_cohort_holds_one_value_of_a_searched_shape_key(cohort_search):
    """latent_dim is searched; a host's first trial fixes it for the rest of the host's trials."""
    runs = trial_runs(cohort_search["client"], "cohorts")
    by_host: dict[str, set[str]] = {}
    for trial_id, run in runs.items():
        if run.data.tags[TAG_STATUS] != "interrupted":
            by_host.setdefault(trial_id.rsplit("_t", 1)[0], set()).add(run.data.params["latent_dim"])
    assert len(by_host) == 2 and all(len(values) == 1 for values in by_host.values()), by_host


def test_a_slot_trial_that_ended_before_the_kill_did_not_run_again(cohort_search):
    runs = trial_runs(cohort_search["client"], "cohorts")
    assert cohort_search["ended_before"]
    for trial_id, points in cohort_search["ended_before"].items():
        assert curve(cohort_search["client"], runs[trial_id]) == points


def test_best_json_names_a_slot_trial_whose_checkpoint_exports_and_trains_on(cohort_search, tmp_path):
    best = json.loads((cohort_search["folder"] / "best.json").read_text())
    state = load_checkpoint(best["checkpoint"])
    assert state["config"] == best["config"] and state["metrics"]["js_modes"] == best["value"]
    assert best["trial_id"] in trial_runs(cohort_search["client"], "cohorts")
    assert f"best js_modes {best['value']:.4g} (trial {best['trial_id']})" in cohort_search["output"]

    assert main(["export", "--checkpoint", best["checkpoint"], "--out", str(tmp_path / "export")]) == 0
    assert (tmp_path / "export").is_dir()
    run = tmp_path / "continued"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(Path(best["checkpoint"]).read_bytes())
    assert main(["train", "--resume", str(run), f"steps={state['step'] + EVAL_EVERY}"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["step"] == state["step"] + EVAL_EVERY


def test_cohort_with_pbt_is_refused_before_anything_starts(tmp_path, capsys):
    code = main(["search", "--config", str(TEST_PRESETS / "pbt_grid25.yaml"), "--cohort", "4",
                 "--storage", str(tmp_path), "--name", "refused"])
    assert code == 2
    assert "a cohort trains with the asha or fifo scheduler" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
