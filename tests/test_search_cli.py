"""``gantune search`` refuses bad presets and flags with one line and exit 2, before Ray starts."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from pipelines.cli import main
PRESETS = Path(__file__).resolve().parent / "presets"


def closed_port() -> int:
    """A loopback port nothing listens on: bound, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
    address = f"127.0.0.1:{closed_port()}"
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


def test_presets_choose_the_scheduler_and_its_units_are_steps():
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    from pipelines.search.runner import build_scheduler
    from search_spaces.preset import load_preset

    asha = build_scheduler(load_preset("grid25"))
    assert isinstance(asha, ASHAScheduler) and asha._time_attr == "step" and asha._max_t == 12000
    pbt = build_scheduler(load_preset("wgan_family"))
    assert isinstance(pbt, PopulationBasedTraining) and pbt._time_attr == "step"
    assert set(pbt._hyperparam_mutations) == {"lr_g", "lr_d", "d_steps"}
    assert pbt._hyperparam_mutations["d_steps"] == list(range(1, 6))
    assert isinstance(build_scheduler(load_preset(str(PRESETS / "fifo_grid25.yaml"))), FIFOScheduler)
