"""End-to-end searches on real Ray, embedded: the session's ASHA search, divergence and PBT.

Placement on a cluster's nodes (and trials moving when one is lost) is tests/faults/test_node_loss.py's;
a driver stopped by each signal and resumed is tests/faults/test_interruptions.py's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest
from checks import TEST_PRESETS, read_trials, runs_by_trial
from images import SCATTER_SIDE, read_picture, read_scatter

from pipelines.cli import main
from pipelines.tracking.tags import TAG_ROLE, TAG_STATUS
from trainables.core.checkpoint import CHECKPOINT_FILE, SAMPLES_FILE, load_checkpoint
from trainables.core.config import config_from_dict
from trainables.quality.objectives import WORST_VALUE

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


def test_pbt_perturbs_running_trials_which_continue_from_checkpoints(tmp_path):
    """The preset names no ``mutate``: PBT perturbs its default, lr_g, lr_d and d_steps.

    Every trial's end is read from its MLflow run: under PBT, Tune's ``result.json`` may miss a
    trial's last report (its ``progress.csv`` and the search's own record hold it)."""
    import yaml

    from mlflow import MlflowClient

    assert search("pbt_grid25.yaml", tmp_path, "pbt") == 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'pbt' / 'mlflow.db'}")
    runs = runs_by_trial(client.search_runs([client.get_experiment_by_name("pbt").experiment_id],
                                            f"tags.`{TAG_ROLE}` = 'trial'"))
    ends = {tid: (run.data.tags[TAG_STATUS], client.get_metric_history(run.info.run_id, "js_modes")[-1].step)
            for tid, run in runs.items()}
    assert ends == {tid: ("completed", 200) for tid in runs}, ends
    recorded = yaml.safe_load((tmp_path / "pbt" / "search.yaml").read_text())["scheduler"]
    assert (recorded["name"], recorded["mutate"]) == ("pbt", ["lr_g", "lr_d", "d_steps"])
    trials = read_trials(tmp_path / "pbt" / "tune")
    assert len(trials) == 4 and set(trials) == set(runs)
    started = {key: {t["rows"][0]["config"][key] for t in trials.values()} for key in ("lr_g", "lr_d")}
    perturbed = moved = 0
    for trial in trials.values():
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
