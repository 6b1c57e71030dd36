"""End-to-end searches on real Ray, embedded, and one resumed after its driver is SIGKILLed.

Placement on a cluster's nodes (and trials moving when one is lost) is tests/faults/test_node_loss.py's:
the kill-and-resume here tests the driver's state, which an embedded Ray holds the same way."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from checks import TEST_PRESETS, read_trials
from images import SCATTER_SIDE, read_picture, read_scatter

from pipelines.cli import main
from trainables.core.checkpoint import CHECKPOINT_FILE, SAMPLES_FILE, load_checkpoint
from trainables.core.config import config_from_dict
from trainables.quality.objectives import WORST_VALUE

REPO_ROOT = Path(__file__).resolve().parents[1]
BEST_KEYS = {"trial_id", "config", "metric", "mode", "value", "checkpoint"}


def search(preset: str, storage: Path, name: str, *flags: str) -> int:
    return main(["search", "--config", str(TEST_PRESETS / preset), "--storage", str(storage), "--name", name, *flags])


@pytest.fixture(scope="module")
def asha_search(tracked_search) -> Path:
    """The session's search (tests/presets/tracked_grid25.yaml): ASHA trials over every loss."""
    return tracked_search["folder"]


def test_asha_stops_some_trials_early_and_the_best_beats_the_worst(asha_search, tracked_search):
    budget = tracked_search["preset"]["budget"]
    trials = read_trials(asha_search / "tune")
    assert len(trials) == budget["num_samples"]
    last_steps = {tid: t["rows"][-1]["step"] for tid, t in trials.items()}
    finished = [tid for tid, t in trials.items() if t["rows"][-1]["status"] == "completed"]
    stopped = [tid for tid, t in trials.items()
               if last_steps[tid] < budget["max_steps"] and not t["rows"][-1]["diverged"]]
    assert finished and stopped, last_steps
    best_per_trial = {tid: min(row["js_modes"] for row in t["rows"]) for tid, t in trials.items()}

    best = json.loads((asha_search / "best.json").read_text())
    assert set(best) == BEST_KEYS
    assert (best["metric"], best["mode"]) == ("js_modes", "min")
    assert best["value"] == min(best_per_trial.values()) < max(best_per_trial.values())
    assert best_per_trial[best["trial_id"]] == best["value"]
    assert best["config"] == config_from_dict(trials[best["trial_id"]]["config"]).to_dict()


def test_best_checkpoint_is_the_one_where_the_best_value_was_reached(asha_search):
    best = json.loads((asha_search / "best.json").read_text())
    rows = read_trials(asha_search / "tune")[best["trial_id"]]["rows"]
    best_steps = {row["step"] for row in rows if row["js_modes"] == best["value"]}
    state = load_checkpoint(best["checkpoint"])
    assert state["step"] in best_steps  # not the trial's last checkpoint unless the best came last
    assert state["metrics"]["js_modes"] == best["value"]
    read_scatter(Path(best["checkpoint"]).parent / SAMPLES_FILE)  # the best generator's points fall in the plot


def test_trial_configs_hold_conditional_params_only_for_their_loss(asha_search):
    trials = read_trials(asha_search / "tune")
    losses = {t["config"]["loss"] for t in trials.values()}
    assert {"wgan", "wgan-gp"} <= losses  # the seeded search samples both
    for trial in trials.values():
        config = trial["config"]
        assert ("clip" in config) == (config["loss"] == "wgan")
        assert ("gp_weight" in config) == (config["loss"] == "wgan-gp")
        assert ("label_smoothing" in config) == (config["loss"] == "gan")

    study = optuna.load_study(study_name=asha_search.name, storage=f"sqlite:///{asha_search / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == len(trials)
    for trial in complete:
        assert ("clip" in trial.params) == (trial.params["loss"] == "wgan")
        assert ("gp_weight" in trial.params) == (trial.params["loss"] == "wgan-gp")


def test_every_report_has_a_checkpoint_with_its_sample_grid(asha_search):
    for trial in read_trials(asha_search / "tune").values():
        kept = sorted(trial["folder"].glob("checkpoint_*"))
        assert kept
        for folder in kept:
            assert load_checkpoint(folder / CHECKPOINT_FILE)["step"] in {row["step"] for row in trial["rows"]}
            read_picture(folder / SAMPLES_FILE, SCATTER_SIDE)


def test_diverging_trials_end_themselves_with_a_finite_penalty(tmp_path, capsys):
    assert search("diverging_grid25.yaml", tmp_path, "diverging") == 0
    out = capsys.readouterr().out
    trials = read_trials(tmp_path / "diverging" / "tune")
    assert len(trials) == 2
    for trial in trials.values():
        last = trial["rows"][-1]
        assert last["diverged"] is True and last["status"] == "diverged"
        assert last["js_modes"] == WORST_VALUE
        assert last["step"] < 400
    assert re.search(r"diverged 2 \|", out)
    assert json.loads((tmp_path / "diverging" / "best.json").read_text())["value"] == WORST_VALUE


# ----------------------------------------------------------------------- a killed driver


def snapshot_trials(experiment: Path) -> dict[str, str]:
    """Each trial's status in the newest experiment snapshot (each driver writes its own file, named
    by its start time): the trials a resume knows."""
    snapshots = sorted(experiment.glob("experiment_state-*.json"))
    if not snapshots:
        return {}
    newest = snapshots[-1]
    return {trial["trial_id"]: trial["status"]
            for trial in (json.loads(trial_json) for trial_json, _ in json.loads(newest.read_text())["trial_data"])}


def snapshot_terminated(experiment: Path) -> set[str]:
    """Trials the last snapshot records as ended: what a resume will not rerun."""
    return {tid for tid, status in snapshot_trials(experiment).items() if status == "TERMINATED"}


def trial_runs(client, experiment_name: str) -> dict[str, object]:
    """The experiment's child runs by Ray trial id; a trial id twice fails the test."""
    from pipelines.tracking.tags import TAG_ROLE, TAG_TRIAL_ID

    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id], f"tags.`{TAG_ROLE}` = 'trial'") if experiment else []
    by_trial = {run.data.tags[TAG_TRIAL_ID]: run for run in runs}
    assert len(by_trial) == len(runs), "a trial has two child runs"
    return by_trial


def test_resume_after_the_driver_is_killed_reruns_no_finished_trial(mlflow_server, tmp_path):
    """SIGKILL gives the driver no chance to end anything: the resume must find Tune's trials, the
    Optuna study and the MLflow runs where they were, and finish them without running a trial twice."""
    from mlflow import MlflowClient
    from pipelines.tracking.tags import TAG_ROLE, TAG_STATUS

    command = [sys.executable, "-m", "pipelines.cli", "search", "--storage", str(tmp_path), "--name", "killed",
               "--tracking-uri", mlflow_server,
               "--experiment", "killed"]
    experiment = tmp_path / "killed" / "tune"
    client = MlflowClient(mlflow_server)
    driver = subprocess.Popen([*command, "--config", str(TEST_PRESETS / "fifo_grid25.yaml"), "--max-concurrent", "2"],
                              cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              start_new_session=True)
    try:
        # Each progress line (a trial end, or every few seconds) is a moment to look at the snapshot.
        for line in driver.stdout:
            if "finished" in line and len(snapshot_terminated(experiment)) >= 2:
                break
        os.killpg(driver.pid, signal.SIGKILL)
    finally:
        driver.kill()
        driver.wait()
    ended = snapshot_terminated(experiment)
    finished_before = {tid: t["rows"] for tid, t in read_trials(experiment).items() if tid in ended}
    assert len(finished_before) >= 2  # (all six may have ended by the kill: none may run again either way)
    runs_before = {tid: run.info.run_id for tid, run in trial_runs(client, "killed").items()}

    resumed = subprocess.run([*command, "--resume"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    known = snapshot_trials(experiment)
    assert len(known) == 6 and set(known.values()) == {"TERMINATED"}
    trials = read_trials(experiment)
    # A trial started after the killed driver's last snapshot is unknown to the resume, which
    # starts another in its place: it may leave a folder, never a report.
    assert all(not t["rows"] for tid, t in trials.items() if tid not in known)
    trials = {tid: t for tid, t in trials.items() if tid in known}
    assert all(t["rows"][-1]["status"] == "completed" and t["rows"][-1]["step"] == 200 for t in trials.values())
    for tid, rows in finished_before.items():
        assert trials[tid]["rows"] == rows  # not one more report: the finished trial did not run again
    study = optuna.load_study(study_name="killed", storage=f"sqlite:///{tmp_path / 'killed' / 'optuna.db'}")
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == 6
    assert json.loads((tmp_path / "killed" / "best.json").read_text())["trial_id"] in trials

    runs_after = trial_runs(client, "killed")
    assert {tid: runs_after[tid].info.run_id for tid in runs_before} == runs_before  # reopened, not duplicated
    for tid, run in runs_after.items():
        expected = ("FINISHED", "completed") if tid in known else ("KILLED", "interrupted")
        assert (run.info.status, run.data.tags[TAG_STATUS]) == expected, tid
    parents = client.search_runs([client.get_experiment_by_name("killed").experiment_id], f"tags.`{TAG_ROLE}` = 'search'")
    assert [parent.info.status for parent in parents] == ["FINISHED"]


def test_pbt_perturbs_running_trials_which_continue_from_checkpoints(tmp_path):
    """The preset names no ``mutate``: PBT perturbs its default, lr_g, lr_d and d_steps."""
    import yaml

    assert search("pbt_grid25.yaml", tmp_path, "pbt") == 0
    recorded = yaml.safe_load((tmp_path / "pbt" / "search.yaml").read_text())["scheduler"]
    assert (recorded["name"], recorded["mutate"]) == ("pbt", ["lr_g", "lr_d", "d_steps"])
    trials = read_trials(tmp_path / "pbt" / "tune")
    assert len(trials) == 4
    started = {key: {t["rows"][0]["config"][key] for t in trials.values()} for key in ("lr_g", "lr_d")}
    perturbed = moved = 0
    for trial in trials.values():
        assert trial["rows"][-1]["step"] == 200
        settings = [(row["config"]["lr_g"], row["config"]["lr_d"], row["config"]["d_steps"]) for row in trial["rows"]]
        assert all(1 <= d_steps <= 4 for _, _, d_steps in settings)
        changes = [i for i in range(1, len(settings)) if settings[i] != settings[i - 1]]
        perturbed += bool(changes)
        # The first report with new settings comes after step 50: the trial went on from a
        # checkpoint instead of starting over.
        assert all(trial["rows"][i]["step"] > 50 for i in changes)
        # An exploiting trial took a better trial's settings and moved the rates off them: rates no
        # trial started with. (A later exploit may copy a trial that still holds its first rates.)
        moved += any(settings[i][0] not in started["lr_g"] and settings[i][1] not in started["lr_d"] for i in changes)
    assert perturbed >= 1 and moved >= 1
