"""What gantune takes from Ray beyond its public API is checked up front, and the rest goes through public API.

An upgrade that removes what the Optuna resume fix reads stops a search with one line before Ray
starts; the progress line follows trials through Tune's public callback hooks alone.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from io import StringIO

import pytest
import ray
from checks import TEST_PRESETS
from ray import tune

from pipelines.cli import main
from pipelines.search import optuna_searcher
from pipelines.search.optuna_searcher import RELIED_ON, ResumableOptunaSearch, check_resumable
from pipelines.search.progress import SearchProgress
from trainables.errors import UnsupportedVersion
from trainables.quality.objectives import WORST_VALUE


def test_the_installed_rays_optuna_search_has_what_the_resume_fix_reads():
    check_resumable()


class RenamedTrials(ResumableOptunaSearch):
    """OptunaSearch as a Ray release that renamed ``_ot_trials`` would build it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self._ot_trials


def test_a_searcher_without_an_attribute_is_refused_naming_the_ray_version():
    with pytest.raises(UnsupportedVersion) as refused:
        check_resumable(RenamedTrials)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"ray {version('ray')}'s OptunaSearch no longer has _ot_trials,")
    assert "_ot_study" not in message and "_completed_trials" not in message  # only what is missing
    assert f"tested: {optuna_searcher.TESTED_RAY}" in message


def test_search_stops_with_one_line_before_ray_starts_when_the_searcher_lacks_one(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(optuna_searcher, "RELIED_ON", (*RELIED_ON, "_ot_renamed"))
    storage = tmp_path / "runs"
    code = main(["search", "--config", str(TEST_PRESETS / "fifo_grid25.yaml"), "--storage", str(storage)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"gantune search: ray {version('ray')}'s OptunaSearch no longer has _ot_renamed,")
    assert not ray.is_initialized() and not storage.exists()


# ------------------------------------------------------------------ the progress line on real Tune

# Each trial's reports of ``loss``, and how it ends. "best" reached 0.5 and ended at 0.9, so a
# line that ranked trials by their last report would name "last" (0.7) instead.
TRIALS = {
    "last": {"losses": [3.0, 2.0, 0.7], "end": "completed"},
    "best": {"losses": [1.5, 0.5, 0.9], "end": "completed"},
    "diverged": {"losses": [WORST_VALUE], "end": "diverged"},
    "stopped": {"losses": [2.0], "end": "running"},  # last seen running: what a scheduler's stop leaves
}


@pytest.fixture(scope="module")
def progress_run(tmp_path_factory) -> dict:
    """Four trials run by Tune with two progress callbacks, one knowing the budget and one not."""

    def report_losses(config: dict) -> None:  # defined here so that Ray ships it by value to its workers
        trial = TRIALS[config["name"]]
        for step, loss in enumerate(trial["losses"], 1):
            status = trial["end"] if step == len(trial["losses"]) else "running"
            tune.report({"loss": loss, "step": step, "status": status, "diverged": status == "diverged"})

    counted, uncounted = StringIO(), StringIO()
    with_total = SearchProgress("loss", "min", total=len(TRIALS), stream=counted)
    without_total = SearchProgress("loss", "min", stream=uncounted)
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        results = tune.Tuner(
            report_losses,
            param_space={"name": tune.grid_search(list(TRIALS))},
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(storage_path=str(tmp_path_factory.mktemp("tune")), verbose=0,
                                      callbacks=[with_total, without_total]),
        ).fit()
    finally:
        ray.shutdown()
    trial_ids = {result.config["name"]: result.metrics["trial_id"] for result in results}
    return {"counted": counted.getvalue().splitlines(), "uncounted": uncounted.getvalue().splitlines(),
            "trial_ids": trial_ids, "callback": with_total}


LINE = re.compile(r"\[ *\d+s\] (?P<body>.*)")


def test_the_last_progress_line_counts_every_outcome_and_names_the_best_ever_report(progress_run):
    best = progress_run["trial_ids"]["best"]
    counts = "running 0 | pending 0 | finished 2 | stopped 1 | diverged 1 | errored 0"
    assert LINE.fullmatch(progress_run["counted"][-1])["body"] == f"4/4 done | {counts} | best loss 0.5 (trial {best})"
    assert LINE.fullmatch(progress_run["uncounted"][-1])["body"] == f"4 done | {counts} | best loss 0.5 (trial {best})"


def test_done_counts_up_to_the_budget_line_by_line(progress_run):
    done = [int(LINE.fullmatch(line)["body"].split("/")[0]) for line in progress_run["counted"]]
    assert done == sorted(done) and done[-1] == 4 and len(done) >= 5  # a line per trial end, one at the end


def test_a_resumed_search_remembers_each_trials_best(progress_run):
    """Tune saves a callback's state with its experiment snapshot and hands it back on resume."""
    resumed = SearchProgress("loss", "min", total=len(TRIALS))
    resumed.set_state(progress_run["callback"].get_state())
    assert resumed.line([]).endswith(f"0/4 done | running 0 | pending 0 | finished 0 | stopped 0 | diverged 0 | "
                                     f"errored 0 | best loss 0.5 (trial {progress_run['trial_ids']['best']})")
