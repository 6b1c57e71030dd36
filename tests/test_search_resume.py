"""Resuming the Optuna searcher from a snapshot taken before a trial finished (no Ray cluster needed)."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState
from ray.tune.result import TRAINING_ITERATION

from pipelines.search.optuna_searcher import ResumableOptunaSearch

STUDY = "resume"


def one_float(trial: optuna.Trial) -> None:
    trial.suggest_float("x", 0.0, 1.0)


def searcher(url: str) -> ResumableOptunaSearch:
    return ResumableOptunaSearch(space=one_float, metric="loss", mode="min", study_name=STUDY,
                                 storage=optuna.storages.RDBStorage(url))


def result(loss: float, step: int) -> dict:
    return {"loss": loss, TRAINING_ITERATION: step}


def test_a_resumed_searcher_ignores_reruns_of_trials_the_study_already_finished(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    before = searcher(url)
    before.suggest("finished")
    before.suggest("running")
    before.on_trial_result("finished", result(2.0, 1))
    before.on_trial_result("running", result(3.0, 1))
    # Tune's snapshot, taken before the first trial ended; then the driver dies right after it ended.
    before.save_to_dir(str(tmp_path), session_str="snapshot")
    before.on_trial_result("finished", result(1.0, 2))
    before.on_trial_complete("finished", result(1.0, 2))

    after = searcher(url)
    after.restore_from_dir(str(tmp_path))
    # The resumed Tune reruns the finished trial from its last checkpoint: new steps, new values.
    after.on_trial_result("finished", result(5.0, 3))
    after.on_trial_complete("finished", result(5.0, 3))
    after.on_trial_result("running", result(0.5, 2))
    after.on_trial_complete("running", result(0.5, 2))

    trials = optuna.load_study(study_name=STUDY, storage=url).get_trials()
    assert [(t.state, t.value, t.intermediate_values) for t in trials] == [
        (TrialState.COMPLETE, 1.0, {1: 2.0, 2: 1.0}),
        (TrialState.COMPLETE, 0.5, {1: 3.0, 2: 0.5}),
    ]
