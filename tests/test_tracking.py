"""MLflow runs of a real search on a real ``mlflow server``: one parent, a child per trial, true statuses."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import yaml
from checks import TEST_PRESETS, free_port, trial_rows

from pipelines.cli import main
from pipelines.search.outcome import end_status
from pipelines.tracking.tags import (
    TAG_BEST_RUN,
    TAG_BEST_STEP,
    TAG_METRIC,
    TAG_MODE,
    TAG_PARENT,
    TAG_ROLE,
    TAG_SEARCH,
    TAG_STATUS,
    TAG_TRIAL_ID,
)
from pipelines.tracking.target import embedded_target, resolve_tracking
from trainables.errors import UsageError


def tune_trials(folder: Path) -> dict[str, list[dict]]:
    """Each trial's reports, as Tune wrote them."""
    return trial_rows(folder / "tune")


@pytest.fixture(scope="module")
def logged(tracked_search):
    from mlflow import MlflowClient

    client = MlflowClient(tracked_search["uri"])
    experiment = client.get_experiment_by_name(tracked_search["experiment"])
    # Other tests may log further searches into the same experiment: keep this search's runs.
    search = tracked_search["folder"].name
    runs = client.search_runs([experiment.experiment_id], f"tags.`{TAG_SEARCH}` = '{search}'", max_results=1000)
    parents = [run for run in runs if run.data.tags.get(TAG_ROLE) == "search"]
    children = [run for run in runs if run.data.tags.get(TAG_ROLE) == "trial"]
    return {"client": client, "parents": parents, "children": children, "trials": tune_trials(tracked_search["folder"]),
            "experiment": experiment, "preset": tracked_search["preset"]}


def test_the_experiment_carries_the_model_training_kind_tag(logged):
    """The tag only: MLflow 3.17's UI ignores it, and what the UI opens on is tests/test_mlflow_ui.py's."""
    assert logged["experiment"].tags.get("mlflow.experimentKind") == "custom_model_development"


def test_one_parent_and_one_child_per_trial_none_running(logged):
    assert len(logged["parents"]) == 1
    parent = logged["parents"][0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[TAG_METRIC] == "js_modes" and parent.data.tags[TAG_MODE] == "min"
    assert parent.data.params["budget.max_steps"] == str(logged["preset"]["budget"]["max_steps"])
    assert "space.loss" in parent.data.params
    children = logged["children"]
    assert sorted(run.data.tags[TAG_TRIAL_ID] for run in children) == sorted(logged["trials"])
    assert all(run.data.tags[TAG_PARENT] == parent.info.run_id for run in children)
    assert not [run for run in children if run.info.status == "RUNNING"]


def asha_rungs(preset: dict) -> list[int]:
    """The steps below max_steps where ASHA may cut a trial: grace_period x reduction_factor^k."""
    scheduler, max_steps = preset["scheduler"], preset["budget"]["max_steps"]
    rungs = [scheduler["grace_period"]]
    while rungs[-1] * scheduler["reduction_factor"] < max_steps:
        rungs.append(rungs[-1] * scheduler["reduction_factor"])
    return rungs


def test_statuses_follow_how_each_trial_ended(logged):
    outcomes = {}
    max_steps, rungs = logged["preset"]["budget"]["max_steps"], asha_rungs(logged["preset"])
    for run in logged["children"]:
        last = logged["trials"][run.data.tags[TAG_TRIAL_ID]][-1]
        # Read off Tune's own record of the trial: its last step and whether it diverged.
        if last["diverged"]:
            expected = ("diverged", "FAILED")
        elif last["step"] == max_steps:
            expected = ("completed", "FINISHED")
        else:
            expected = ("early_stopped", "FINISHED")
            assert last["step"] in rungs, (last, rungs)  # ASHA cut it at a rung
        assert (run.data.tags[TAG_STATUS], run.info.status) == expected
        outcomes[expected[0]] = outcomes.get(expected[0], 0) + 1
    assert outcomes.get("early_stopped") and outcomes.get("completed"), outcomes


@pytest.mark.parametrize(
    "last_result, errored, status",
    [
        ({"step": 600, "status": "completed", "diverged": False}, False, "completed"),
        ({"step": 200, "status": "running", "diverged": False}, False, "early_stopped"),
        ({"step": 250, "status": "diverged", "diverged": True}, False, "diverged"),
        ({"step": 250, "status": "diverged"}, False, "diverged"),  # the trainer's own report, as a slot-trial's
        ({"step": 200, "status": "running", "diverged": False}, True, "errored"),
        ({}, True, "errored"),  # failed before its first report
    ],
)
def test_trial_status_names_each_way_a_trial_ends(last_result, errored, status):
    assert end_status(last_result, errored=errored) == status


def test_params_tags_and_metric_curves(logged):
    client = logged["client"]
    for run in logged["children"]:
        rows = logged["trials"][run.data.tags[TAG_TRIAL_ID]]
        assert run.data.params["loss"] == run.data.tags["loss"] and run.data.tags["arch"] == "mlp"
        if run.data.params["loss"] != "gan":
            assert "label_smoothing" not in run.data.params and "minimax" not in run.data.params
        assert run.data.tags["node"]
        history = client.get_metric_history(run.info.run_id, "js_modes")
        finite_rows = [row for row in rows if not row["diverged"]]
        assert [m.step for m in history] == [row["step"] for row in finite_rows]
        assert [m.value for m in history] == pytest.approx([row["js_modes"] for row in finite_rows])
        assert {"d_loss", "g_loss", "modes_covered"} <= set(run.data.metrics)
    longest = max(logged["children"], key=lambda run: len(logged["trials"][run.data.tags[TAG_TRIAL_ID]]))
    assert len(client.get_metric_history(longest.info.run_id, "g_loss")) > 1


def test_sample_grids_and_best_checkpoint_are_artifacts(logged):
    client = logged["client"]
    for run in logged["children"]:
        rows = [row for row in logged["trials"][run.data.tags[TAG_TRIAL_ID]] if not row["diverged"]]
        grids = [f.path for f in client.list_artifacts(run.info.run_id, "samples")]
        assert grids == [f"samples/step_{row['step']:07d}.png" for row in rows]
        assert [f.path for f in client.list_artifacts(run.info.run_id, "checkpoint")] == ["checkpoint/checkpoint.pt"]
        best_step = min(rows, key=lambda row: row["js_modes"])["step"]
        assert run.data.tags[TAG_BEST_STEP] == str(best_step)


def test_parent_summary_names_the_best_trial_whose_model_predicts(logged):
    import mlflow.artifacts
    import mlflow.pyfunc

    from pipelines.registry.pyfunc_model import input_example

    parent = logged["client"].get_run(logged["parents"][0].info.run_id)
    best_value = min(row["js_modes"] for rows in logged["trials"].values() for row in rows if not row["diverged"])
    assert parent.data.metrics["best_js_modes"] == pytest.approx(best_value)
    assert parent.data.metrics["trials"] == len(logged["trials"])
    local = mlflow.artifacts.download_artifacts(f"runs:/{parent.data.tags[TAG_BEST_RUN]}/model",
                                                tracking_uri=logged["client"].tracking_uri)
    model = mlflow.pyfunc.load_model(local)
    latent_dim = int(logged["client"].get_run(parent.data.tags[TAG_BEST_RUN]).data.params["latent_dim"])
    frame = input_example(type("Spec", (), {"latent_dim": latent_dim, "conditional": False})(), rows=5)
    points = model.predict(frame)
    assert points.shape == (5, 2) and points.dtype.name == "float32"
    assert model.metadata.signature is not None


def test_cluster_search_with_unshared_local_storage_fails_at_start(tmp_path, capsys):
    with socket.socket() as head:  # something answering at the address, as a Ray head would
        head.bind(("127.0.0.1", 0))
        head.listen()
        address = f"127.0.0.1:{head.getsockname()[1]}"
        code = main(["search", "--config", "grid25", "--storage", str(tmp_path / "runs"), "--address", address])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--shared-storage" in err[0] and "would be lost" in err[0]
    assert not (tmp_path / "runs").exists()


def test_tracking_target_rules(mlflow_server, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    local = resolve_tracking(None, None, "s1", str(tmp_path / "s1"), True, None, False)
    assert local == embedded_target(str(tmp_path / "s1"), "s1")
    assert local.uri == f"sqlite:///{tmp_path / 's1' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    assert resolve_tracking(None, "exp", "s1", "s3://b/s1", False, "ray://h:10001", False).uri == mlflow_server
    assert resolve_tracking(None, None, "s1", str(tmp_path), True, "h:6379", True).experiment == "s1"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with pytest.raises(UsageError, match="--tracking-uri"):
        resolve_tracking(None, None, "s1", "s3://b/s1", False, None, False)


def test_an_unreachable_tracking_server_fails_at_start(tmp_path, capsys):
    closed = f"http://127.0.0.1:{free_port()}"
    code = main(["search", "--config", "grid25", "--storage", str(tmp_path), "--name", "s", "--tracking-uri", closed])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no MLflow server answers" in err[0]
    assert list(tmp_path.iterdir()) == []




def unloggable_model(client, best, search_name):
    """The model logging failing, as it does on a checkpoint the driver's code cannot read."""
    raise ValueError("config: unknown key 'new_key'")


def test_trials_the_time_budget_stops_end_as_early_stopped(mlflow_server, tmp_path, monkeypatch, capsys):
    """Also: a best generator that cannot be logged as a model costs the search nothing else (its
    parent run still ends FINISHED, ``best.json`` is written) and is reported in one line."""
    from mlflow import MlflowClient

    monkeypatch.setattr("pipelines.tracking.callback.log_best_model", unloggable_model)
    (tmp_path / "budget.yaml").write_text((TEST_PRESETS / "time_budget_grid25.yaml").read_text())
    budget_s = yaml.safe_load((tmp_path / "budget.yaml").read_text())["budget"]["time_budget"]
    started = time.monotonic()
    code = main(["search", "--config", str(tmp_path / "budget.yaml"), "--storage", str(tmp_path), "--name", "budget",
                 "--tracking-uri", mlflow_server, "--experiment", "time-budget"])
    seconds = time.monotonic() - started
    assert code == 0
    # A million steps take hours: the search ended because its time ran out (no trial completed, below).
    assert seconds >= budget_s, seconds
    trials = tune_trials(tmp_path / "budget")
    assert len(trials) == 2
    for rows in trials.values():
        assert rows[-1]["status"] == "running" and not rows[-1]["diverged"], rows[-1]
        assert 50 <= rows[-1]["step"] < 1_000_000 and len(rows) >= 2
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("time-budget")
    children = client.search_runs([experiment.experiment_id], f"tags.`{TAG_ROLE}` = 'trial'")
    assert sorted(run.data.tags[TAG_TRIAL_ID] for run in children) == sorted(trials)
    assert [(run.info.status, run.data.tags[TAG_STATUS]) for run in children] == [("FINISHED", "early_stopped")] * 2
    for run in children:  # each run holds the trial's curve up to where the budget cut it
        rows = trials[run.data.tags[TAG_TRIAL_ID]]
        assert [m.step for m in client.get_metric_history(run.info.run_id, "js_modes")] == [row["step"] for row in rows]
    parent, = client.search_runs([experiment.experiment_id], f"tags.`{TAG_ROLE}` = 'search'")
    assert parent.info.status == "FINISHED" and float(parent.data.params["budget.time_budget"]) == budget_s
    best = json.loads((tmp_path / "budget" / "best.json").read_text())
    assert best["checkpoint"] and Path(best["checkpoint"]).is_file()
    assert best["trial_id"] in trials
    out = capsys.readouterr().out
    unlogged = [line for line in out.splitlines() if "the best generator was not logged as a model" in line]
    assert len(unlogged) == 1 and "unknown key 'new_key'" in unlogged[0], out[-2000:]

