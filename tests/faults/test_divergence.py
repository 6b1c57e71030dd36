"""Trials that diverge end as diverged, the rest of the search goes on, and a trial, whether it
diverged and returned or the scheduler stopped it, leaves nothing of its trainer behind in the
worker process that the next trial reuses.

One real search (``gantune search``, embedded Ray, tracking to a real ``mlflow server``) of six
grid25 trials whose critic learning rate is a choice: 10000 diverges at the first report, the
other is stable, and ASHA ends each stable trial at max_steps by raising inside ``tune.report``.
The trainable is ``pipelines.search.trials.single.train_gan`` itself, wrapped only to count, in the
worker process, the objects the trial leaves alive.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import optuna
import yaml
from checks import TEST_PRESETS, trial_rows

from pipelines.cli import main
from pipelines.tracking.tags import TAG_ROLE, TAG_SEARCH, TAG_STATUS, TAG_TRIAL_ID
from trainables.quality.objectives import WORST_VALUE

PRESET = TEST_PRESETS / "diverging_mix_grid25.yaml"
NAME = "diverging-mix"
EXPERIMENT = "faults-divergence"
DIVERGING_LR = 10000.0


def counting(record: Path):
    """``train_gan`` that appends, per trial, what its worker process holds before and after it, and
    the exception it ended with, if any.

    Defined in a function so Ray pickles it by value; inside the worker it runs the real
    ``train_gan`` and counts with ``gc.get_objects()`` (no collection of its own first: freeing the
    trial's objects is the trainable's job): Trainer objects, torch modules, optimizers, and the
    bytes of every live tensor."""

    def train_gan(config, metric, mode, cpus):
        import gc
        import os

        import torch
        from ray import tune

        from pipelines.search.trials import single
        from trainables.core.trainer import Trainer

        def holding() -> dict[str, int]:
            objects = gc.get_objects()
            tensors = [o for o in objects if isinstance(o, torch.Tensor)]
            return {
                "trainers": sum(isinstance(o, Trainer) for o in objects),
                "modules": sum(isinstance(o, torch.nn.Module) for o in objects),
                "optimizers": sum(isinstance(o, torch.optim.Optimizer) for o in objects),
                "tensor_bytes": sum(t.untyped_storage().nbytes() for t in tensors if not t.is_meta),
            }

        before = holding()
        raised = None
        try:
            single.train_gan(config, metric=metric, mode=mode, cpus=cpus)
        except BaseException as err:  # a scheduler's stop, raised inside tune.report
            raised = type(err).__name__
            raise
        finally:  # an exception still in flight here was in flight in train_gan's own finally
            line = {"trial_id": tune.get_context().get_trial_id(), "pid": os.getpid(), "lr_d": config["lr_d"],
                    "raised": raised, "before": before, "after": holding()}
            with open(record, "a") as sink:
                sink.write(json.dumps(line) + "\n")

    return train_gan


def test_diverging_and_stopped_trials_end_alone_and_leave_no_trainer_in_the_reused_worker(
        mlflow_server, tmp_path, monkeypatch, capsys):
    import pipelines.search.trials.single
    from mlflow import MlflowClient

    preset = yaml.safe_load(PRESET.read_text())
    num_samples, max_steps = preset["budget"]["num_samples"], preset["budget"]["max_steps"]
    every = preset["params"]["eval_every"]
    record = tmp_path / "holding.jsonl"
    # The search builds its trainable from this attribute; trial processes run the real one.
    monkeypatch.setattr(pipelines.search.trials.single, "train_gan", counting(record))
    started = time.monotonic()
    code = main(["search", "--config", str(PRESET), "--storage", str(tmp_path), "--name", NAME,
                 "--tracking-uri", mlflow_server, "--experiment", EXPERIMENT])
    seconds = time.monotonic() - started
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]

    # Tune: the trials with the diverging learning rate, and only they, ended themselves as diverged.
    trials = trial_rows(tmp_path / NAME / "tune")
    assert len(trials) == num_samples
    lr_d = {trial_id: rows[0]["config"]["lr_d"] for trial_id, rows in trials.items()}
    diverging = {trial_id for trial_id, lr in lr_d.items() if lr == DIVERGING_LR}
    stable = set(trials) - diverging
    assert len(diverging) >= 3 and stable, lr_d
    for trial_id, rows in trials.items():
        last = rows[-1]
        if trial_id in diverging:
            assert (last["status"], last["diverged"], last["js_modes"]) == ("diverged", True, WORST_VALUE)
            assert last["step"] == every and len(rows) == 1  # it stopped at its first report
        else:
            assert (last["status"], last["diverged"], last["step"]) == ("completed", False, max_steps)
            assert [row["step"] for row in rows] == list(range(every, max_steps + 1, every))
            assert not any(row["diverged"] for row in rows)

    # Optuna took every outcome, the penalty included: no trial left RUNNING in the study.
    study = optuna.load_study(study_name=NAME, storage=f"sqlite:///{tmp_path / NAME / 'optuna.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * num_samples
    assert sorted(t.value for t in study.trials if t.value == WORST_VALUE) == [WORST_VALUE] * len(diverging)

    # MLflow: diverged runs FAILED with status diverged, the others FINISHED as completed.
    client = MlflowClient(mlflow_server)
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = client.search_runs([experiment_id], f"tags.`{TAG_SEARCH}` = '{NAME}'", max_results=1000)
    parents = [run for run in runs if run.data.tags.get(TAG_ROLE) == "search"]
    children = {run.data.tags[TAG_TRIAL_ID]: run for run in runs if run.data.tags.get(TAG_ROLE) == "trial"}
    trial_ids = [run.data.tags[TAG_TRIAL_ID] for run in runs if run.data.tags.get(TAG_ROLE) == "trial"]
    ended = {trial_id: (run.info.status, run.data.tags.get(TAG_STATUS)) for trial_id, run in children.items()}
    histories = {trial_id: [m.step for m in client.get_metric_history(run.info.run_id, "js_modes")]
                 for trial_id, run in children.items()}
    expected_points = {trial_id: [row["step"] for row in rows if not row["diverged"]]
                       for trial_id, rows in trials.items()}
    figures = {
        "seconds": round(seconds, 1),
        "diverged": len(diverging), "stable": len(stable),
        "trials_lost": num_samples - len(trials),
        "runs_left_running": sum(run.info.status == "RUNNING" for run in runs),
        "duplicated_runs": len(trial_ids) - len(set(trial_ids)),
        "metric_points_lost": sum(len(set(points) - set(histories.get(trial_id, [])))
                                  for trial_id, points in expected_points.items()),
        "metric_points_duplicated": sum(len(steps) - len(set(steps)) for steps in histories.values()),
    }
    print(f"\ndivergence figures: {json.dumps(figures)}")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(trial_ids) == sorted(trials), figures
    assert ended == {trial_id: ("FAILED", "diverged") if trial_id in diverging else ("FINISHED", "completed")
                     for trial_id in trials}
    assert histories == expected_points, figures  # the penalty is no measurement: never logged
    best = json.loads((tmp_path / NAME / "best.json").read_text())
    assert best["trial_id"] in stable and best["value"] < WORST_VALUE

    assert f"diverged {len(diverging)} |" in out

    # Memory: nothing of a trial's trainer is left in its worker process once the trial ends. A
    # diverged trial returns (it ends itself); a stable one is stopped by ASHA, raising in its last
    # report. The last trial of each process is killed with it when the search ends, and may leave
    # no record: every other trial does.
    holding = [json.loads(line) for line in record.read_text().splitlines()]
    recorded = {entry["trial_id"] for entry in holding}
    assert diverging <= recorded and len(recorded) >= num_samples - 2, (recorded, sorted(trials))
    for entry in holding:
        assert (entry["raised"] is None) == (entry["trial_id"] in diverging), entry
        assert entry["after"]["trainers"] == entry["after"]["modules"] == entry["after"]["optimizers"] == 0, entry
        assert entry["before"]["trainers"] == 0, entry
    assert any(entry["raised"] for entry in holding), holding  # a scheduler's stop was seen to leave nothing
    # Both processes ran a diverged trial and then further trials: the reused worker did not grow.
    by_pid: dict[int, list[dict]] = {}
    for entry in holding:  # the record is appended in the order trials ended
        by_pid.setdefault(entry["pid"], []).append(entry)
    reused_after_divergence = [entries for entries in by_pid.values()
                               if any(entry["trial_id"] in diverging for entry in entries[:-1])]
    assert reused_after_divergence, by_pid
    for entries in by_pid.values():
        held = [entry["after"]["tensor_bytes"] for entry in entries]
        assert held == [held[0]] * len(held), entries  # the first trial loads the dataset, kept for later ones
