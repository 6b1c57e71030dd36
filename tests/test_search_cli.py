"""``gantune search`` refuses bad presets and flags with one line and exit 2, before Ray starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import ray
from checks import free_port

from pipelines.cli import main

PRESETS = Path(__file__).resolve().parent / "presets"


@pytest.fixture
def write_preset(tmp_path):
    def write(text: str):
        path = tmp_path / "preset.yaml"
        path.write_text(text)
        return str(path)

    return write


BAD_INPUTS = [
    ("unknown loss", "dataset: grid25\nparams: {loss: [gan, wgan-xl]}\n", [], "params.loss: unknown loss 'wgan-xl'"),
    ("empty choice list", "dataset: grid25\nparams: {latent_dim: []}\n", [], "params.latent_dim: empty choice list"),
    ("negative budget", "dataset: grid25\nbudget: {num_samples: -5}\n", [], "budget.num_samples: must be an integer >= 1"),
    ("negative flag", "dataset: grid25\n", ["--num-samples", "-2"], "--num-samples must be an integer >= 1, got '-2'"),
    ("zero time budget", "dataset: grid25\n", ["--time-budget", "0"], "--time-budget must be a number > 0"),
    ("text cpus", "dataset: grid25\n", ["--cpus-per-trial", "many"], "--cpus-per-trial must be a number > 0"),
    ("negative gpus", "dataset: grid25\n", ["--gpus-per-trial", "-1"], "--gpus-per-trial must be a number >= 0"),
    ("fractional trials", "dataset: grid25\n", ["--num-samples", "2.5"], "--num-samples must be an integer >= 1"),
    ("text concurrency", "dataset: grid25\n", ["--max-concurrent", "all"], "--max-concurrent must be an integer >= 1"),
    ("nan time budget", "dataset: grid25\n", ["--time-budget", "nan"], "--time-budget must be a number > 0, got 'nan'"),
    ("inf time budget", "dataset: grid25\n", ["--time-budget", "inf"], "--time-budget must be a number > 0, got 'inf'"),
    ("nan gpus", "dataset: grid25\n", ["--gpus-per-trial", "nan"], "--gpus-per-trial must be a number >= 0"),
    ("zero cohort", "dataset: grid25\n", ["--cohort", "0"], "--cohort must be an integer >= 1, got '0'"),
    ("fractional cohort", "dataset: grid25\n", ["--cohort", "2.5"], "--cohort must be an integer >= 1"),
    ("inf cpus", "dataset: grid25\n", ["--cpus-per-trial=-inf"], "--cpus-per-trial must be a number > 0, got '-inf'"),
    ("bad name", "dataset: grid25\n", ["--name", "../escape"], "--name '../escape' must be letters"),
    ("malformed address", "dataset: grid25\n", ["--address", "localhost"], "is not of the form auto, HOST:PORT"),
    ("resume without name", "dataset: grid25\n", ["--resume"], "--resume needs --name"),
    ("resume unknown search", "dataset: grid25\n", ["--resume", "--name", "nothing"], "no search 'nothing'"),
    ("bad study url", "dataset: grid25\n", ["--optuna-storage", "not a url"], "--optuna-storage 'not a url' is not"),
    ("uri without study db", "dataset: grid25\n", ["--storage", "s3://bucket/runs"], "--optuna-storage"),
]


@pytest.mark.parametrize("preset, flags, message", [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_nothing_started(preset, flags, message, write_preset, tmp_path, capsys):
    storage = tmp_path / "runs"
    code = main(["search", "--config", write_preset(preset), "--storage", str(storage), *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("gantune search: ")
    assert message in err
    assert not ray.is_initialized()
    assert not storage.exists()


def test_unreachable_address_is_refused_before_ray_starts(tmp_path, capsys):
    address = f"127.0.0.1:{free_port()}"
    code = main(["search", "--config", str(PRESETS / "fifo_grid25.yaml"), "--storage", str(tmp_path / "runs"),
                 "--address", address])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"--address {address}: nothing answers" in err
    assert not ray.is_initialized() and not (tmp_path / "runs").exists()


def test_existing_search_name_is_refused_without_resume(tmp_path, capsys):
    (tmp_path / "runs" / "taken" / "tune").mkdir(parents=True)
    code = main(["search", "--config", str(PRESETS / "fifo_grid25.yaml"), "--storage", str(tmp_path / "runs"),
                 "--name", "taken"])
    assert code == 2
    assert "search 'taken' already exists" in capsys.readouterr().err


def test_command_line_errors_do_not_even_import_ray(tmp_path):
    """A fresh interpreter shows that validation never loads Ray, let alone starts it."""
    script = (
        "import sys; from pipelines.cli import main; "
        f"code = main(['search', '--config', {str(PRESETS / 'fifo_grid25.yaml')!r}, '--max-concurrent', '0']); "
        "print(code, 'ray' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.stdout.split() == ["2", "False"]
    assert done.stderr.strip() == "gantune search: --max-concurrent must be an integer >= 1, got '0'"


def asha_decisions(scheduler, metric: str, mode: str, results: list[tuple[str, dict]]) -> list[str]:
    """Feed results to a real Ray scheduler as Tune would, trial by trial; its CONTINUE/STOP answers."""
    from ray.tune.experiment import Trial

    scheduler.set_search_properties(metric, mode)
    trials = {}
    for name, _ in results:
        if name not in trials:
            trials[name] = Trial("__fake", stub=True)
            scheduler.on_trial_add(None, trials[name])
    return [scheduler.on_trial_result(None, trials[name], result) for name, result in results]


def test_asha_cuts_at_the_presets_grace_period_and_max_steps_counted_in_steps():
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    from pipelines.search.algorithms import build_scheduler
    from search_spaces.preset import load_preset

    preset = load_preset("grid25")
    assert (preset.metric, preset.mode) == ("js_modes", "min")
    grace, factor, max_steps = preset.scheduler.grace_period, preset.scheduler.reduction_factor, preset.budget.max_steps
    assert grace * factor < max_steps  # a second rung lies inside the budget, so the case below exists
    asha = build_scheduler(preset)
    assert isinstance(asha, ASHAScheduler)

    def at(trial: str, step: int, js: float) -> tuple[str, dict]:
        return trial, {"step": step, "training_iteration": 1, "js_modes": js}

    decisions = asha_decisions(asha, preset.metric, preset.mode, [
        at("good", grace - 1, 0.1), at("bad", grace - 1, 0.9),  # before the first rung nothing is cut
        at("good", grace, 0.1),                                  # first at the rung: sets the bar
        at("bad", grace, 0.9),                                   # worse than the bar at the rung: stopped
        at("better", grace, 0.05),                               # better: goes on
        at("good", max_steps - 1, 0.1),                          # past the next rung, first there: goes on
        at("good", max_steps, 0.1),                              # budget.max_steps reached: stopped
    ])
    C, S = TrialScheduler.CONTINUE, TrialScheduler.STOP
    assert decisions == [C, C, C, S, C, C, S]
    # The unit is the trainer's step, not Tune's iteration count: max_steps iterations at step 10 go on.
    fresh = build_scheduler(preset)
    at_step_10 = {"step": 10, "training_iteration": max_steps, "js_modes": 0.5}
    assert asha_decisions(fresh, "js_modes", "min", [("t", at_step_10)]) == [C]


def test_pbt_presets_resolve_what_to_perturb_and_when_in_steps():
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import FIFOScheduler, PopulationBasedTraining

    from pipelines.search.algorithms import build_scheduler
    from search_spaces.preset import load_preset
    from search_spaces.space import Range

    wgan = load_preset("wgan_family")
    assert (wgan.scheduler.name, wgan.scheduler.perturbation_interval) == ("pbt", 1000)
    assert wgan.scheduler.mutate == ("lr_g", "lr_d", "d_steps")
    assert wgan.params["d_steps"] == Range(1, 5, integer=True)  # PBT moves d_steps within 1..5
    pbt = build_scheduler(wgan)
    assert isinstance(pbt, PopulationBasedTraining)
    # PBT times perturbations by the trainer's step: a result without it is refused.
    pbt.set_search_properties(wgan.metric, wgan.mode)
    with pytest.raises(RuntimeError, match="time_attr step"):
        pbt.on_trial_result(None, Trial("__fake", stub=True), {"training_iteration": 1000, wgan.metric: 1.0})
    assert isinstance(build_scheduler(load_preset(str(PRESETS / "fifo_grid25.yaml"))), FIFOScheduler)


def test_pbt_without_mutate_perturbs_the_learning_rates_and_critic_steps_it_searches(write_preset):
    from pipelines.search.algorithms import build_scheduler
    from search_spaces.preset import load_preset

    preset = load_preset(write_preset("dataset: grid25\nscheduler: pbt\n"))
    assert preset.scheduler.mutate == ("lr_g", "lr_d", "d_steps")
    assert preset.to_dict()["scheduler"]["mutate"] == ["lr_g", "lr_d", "d_steps"]
    assert preset.scheduler.perturbation_interval is None  # PBT then perturbs at every evaluation
    # A pinned one has no range to move in: the default leaves it out, and the scheduler builds.
    pinned = load_preset(write_preset("dataset: grid25\nscheduler: pbt\nparams: {lr_g: 0.001}\n"))
    assert pinned.scheduler.mutate == ("lr_d", "d_steps")
    build_scheduler(pinned)


def test_pbt_default_mutate_with_everything_pinned_is_one_line_before_ray_starts(write_preset, tmp_path, capsys):
    storage = tmp_path / "runs"
    preset = write_preset("dataset: grid25\nscheduler: pbt\nparams: {lr_g: 0.001, lr_d: 0.001, d_steps: 1}\n")
    code = main(["search", "--config", preset, "--storage", str(storage)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("gantune search: ")
    assert "scheduler.mutate" in err
    assert not ray.is_initialized()
    assert not storage.exists()


def test_address_auto_without_a_cluster_is_one_line_naming_ray_start(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # Ray looks for the last `ray start` under its temp folder: an empty one has none.
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "ray-tmp"))
    (tmp_path / "ray-tmp").mkdir()
    code = main(["search", "--config", str(PRESETS / "fifo_grid25.yaml"), "--storage", str(tmp_path / "runs"),
                 "--address", "auto"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("gantune search: --address auto")
    assert "ray start --head" in err
    assert not ray.is_initialized() and not (tmp_path / "runs").exists()


def test_address_auto_follows_the_address_the_last_ray_start_recorded(tmp_path, monkeypatch, capsys):
    """A cluster that is gone but left its address behind: auto resolves to that address, which
    then does not answer; still one line before anything starts."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "ray-tmp"))
    (tmp_path / "ray-tmp" / "ray").mkdir(parents=True)
    recorded = f"127.0.0.1:{free_port()}"
    (tmp_path / "ray-tmp" / "ray" / "ray_current_cluster").write_text(recorded + "\n")
    code = main(["search", "--config", str(PRESETS / "fifo_grid25.yaml"), "--storage", str(tmp_path / "runs"),
                 "--address", "auto"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"--address auto: nothing answers at {recorded}" in err
    assert not ray.is_initialized() and not (tmp_path / "runs").exists()


def test_address_auto_finds_the_cluster_that_ray_start_left(ray_head, tmp_path, capsys):
    """The same command with a ``ray start --head`` running: --address auto resolves to it and the
    search goes on to its next check (local storage that the cluster's nodes could not share)."""
    code = main(["search", "--config", str(PRESETS / "fifo_grid25.yaml"), "--storage", str(tmp_path / "runs"),
                 "--address", "auto"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "--shared-storage" in err and "no running Ray cluster" not in err
    assert not ray.is_initialized() and not (tmp_path / "runs").exists()
