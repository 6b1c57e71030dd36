"""The standalone trainer on the CPU: checkpoints, resume, divergence, clipping, independence from Ray/MLflow."""

import hashlib
import json
import math
import subprocess
import sys

import pytest
import torch
from images import read_scatter
from torch import nn

from trainables.core.checkpoint import load_checkpoint
from trainables.core.config import config_from_dict, load_config
from trainables.core.trainer import Trainer
from trainables.data.datasets import load_dataset

SIGNALS = ("d_loss", "g_loss", "wasserstein", "gp", "d_grad_norm", "g_grad_norm")


def grid_config(**changes):
    base = dict(dataset="grid25", arch="mlp", width=32, batch_size=32, steps=20, eval_every=10, eval_samples=500, device="cpu")
    return config_from_dict({**base, **changes})


@pytest.fixture(scope="module")
def grid25():
    return load_dataset("grid25")


def run_to_end(trainer):
    return list(trainer.reports())


def test_trainer_imports_neither_ray_nor_mlflow_nor_optuna():
    code = (
        "import sys\n"
        "for name in ('ray', 'mlflow', 'optuna'): sys.modules[name] = None\n"
        "import trainables.core.trainer, trainables.quality.scoring, trainables.quality.evaluator_cache, trainables.core.report_loop\n"
        "from trainables.core.config import config_from_dict\n"
        "config = config_from_dict(dict(dataset='ring8', arch='mlp', width=16, steps=2, eval_every=2, eval_samples=200, device='cpu'))\n"
        "print(list(trainables.core.trainer.Trainer(config).reports())[-1]['status'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "completed"


@pytest.mark.parametrize("loss", ["gan", "lsgan", "hinge", "wgan", "wgan-gp"])
@pytest.mark.parametrize("conditional", [False, True])
def test_every_loss_and_mode_trains_and_reports_signals(grid25, loss, conditional):
    reports = run_to_end(Trainer(grid_config(loss=loss, conditional=conditional), grid25))
    assert [r["step"] for r in reports] == [10, 20]
    assert [r["status"] for r in reports] == ["running", "completed"]
    for key in SIGNALS + ("steps_per_s", "modes_covered", "high_quality", "kl_modes"):
        assert math.isfinite(reports[-1][key]), key
    assert (reports[-1]["gp"] > 0) == (loss == "wgan-gp")
    # Both nets received gradients and the loop was timed: a step that skipped either update fails here.
    assert reports[-1]["d_grad_norm"] > 0 and reports[-1]["g_grad_norm"] > 0 and reports[-1]["steps_per_s"] > 0


def test_wgan_critic_weights_stay_within_clip(grid25):
    trainer = Trainer(grid_config(loss="wgan", clip=0.02, d_steps=1, steps=1, eval_every=1), grid25)
    with torch.no_grad():
        for parameter in trainer.discriminator.parameters():
            parameter.normal_(0.0, 1.0)
    run_to_end(trainer)
    weights = torch.cat([p.flatten() for p in trainer.discriminator.parameters()])
    assert weights.abs().max().item() <= 0.02
    assert weights.abs().max().item() > 0.019  # weights started far outside: clipping did happen


def test_dcgan_and_conditional_shapes():
    for dataset, shape in (("mnist", (1, 28, 28)), ("cifar10", (3, 32, 32))):
        config = config_from_dict(dict(dataset=dataset, conditional=True, width=8, device="cpu"))
        from trainables.core.models import build_discriminator, build_generator

        images = build_generator(config)(torch.randn(4, config.latent_dim), torch.arange(4))
        assert images.shape == (4, *shape) and images.abs().max() <= 1
        assert build_discriminator(config)(images, torch.arange(4)).shape == (4,)


def test_same_seed_same_losses_and_resume_reproduces_uninterrupted_run(grid25, tmp_path):
    config = grid_config(loss="wgan-gp", conditional=True, steps=30, eval_every=10)
    uninterrupted = run_to_end(Trainer(config, grid25))
    assert [r["d_loss"] for r in run_to_end(Trainer(config, grid25))] == [r["d_loss"] for r in uninterrupted]

    first = Trainer(config_from_dict({**config.to_dict(), "steps": 10}), grid25)
    run_to_end(first)
    first.save_checkpoint(tmp_path / "checkpoint.pt")
    resumed = Trainer.from_checkpoint(tmp_path / "checkpoint.pt", {"steps": 30}, data=grid25)
    assert resumed.step == 10
    rest = run_to_end(resumed)
    assert [r["step"] for r in rest] == [20, 30]
    for ours, theirs in zip(rest, uninterrupted[1:]):
        for key in SIGNALS + ("high_quality",):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-5, abs=1e-7), key


def test_checkpoint_holds_everything_and_loads_weights_only(grid25, tmp_path):
    trainer = Trainer(grid_config(steps=10), grid25)
    run_to_end(trainer)
    trainer.save_checkpoint(tmp_path / "checkpoint.pt")
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert {"config", "step", "generator", "discriminator", "opt_g", "opt_d", "rng", "metrics"} <= set(state)
    assert state["step"] == 10 and state["config"]["dataset"] == "grid25"
    assert state["metrics"]["status"] == "completed"
    assert not list(tmp_path.glob(".*")), "a temporary file was left behind"


def test_divergence_ends_with_status_and_last_finite_metrics(grid25):
    trainer = Trainer(grid_config(steps=30), grid25)
    reports = trainer.reports()
    first = next(reports)
    with torch.no_grad():
        next(trainer.generator.parameters()).fill_(float("nan"))
    last = next(reports)
    assert last["status"] == "diverged" and last["step"] == 20
    assert all(last[key] == first[key] for key in SIGNALS)
    assert list(reports) == []


def test_exploding_learning_rate_diverges_without_traceback(grid25):
    reports = run_to_end(Trainer(grid_config(lr_d=1e30, lr_g=1e30, steps=40), grid25))
    assert reports[-1]["status"] == "diverged"
    assert all(math.isfinite(v) for v in reports[-1].values() if isinstance(v, float))


def test_cli_train_writes_outputs_and_prints_metrics_json(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "pipelines.cli", "train", "--config", "configs/ring8_gan.yaml",
               "steps=20", "eval_every=10", "eval_samples=500", "device=cpu", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    written = json.loads((out / "metrics.json").read_text())
    assert printed == written
    assert written["status"] == "completed" and written["step"] == 20
    assert {"d_loss", "g_loss", "modes_covered", "high_quality", "kl_modes", "steps_per_s"} <= set(written)
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000010.png", "step_000020.png"]
    for picture in (out / "samples").iterdir():
        read_scatter(picture)  # ring8 is 2-D: a scatter of samples over the mode centres
    assert (out / "checkpoint.pt").is_file() and (out / "config.yaml").is_file()

    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 2 and "already holds a run" in again.stderr

    resumed = subprocess.run([sys.executable, "-m", "pipelines.cli", "train", "--resume", str(out), "steps=30"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["step"] == 30


@pytest.mark.parametrize("override", ["latent_dim=16", "width=64"])
def test_cli_resume_refuses_an_override_that_changes_tensor_shapes(tmp_path, capsys, override):
    """The checkpoint's weights cannot load into nets of another shape: one line, exit 2, run untouched."""
    from pipelines.cli import main

    out = tmp_path / "run"
    assert main(["train", "--config", "configs/ring8_gan.yaml", "latent_dim=8", "width=32", "steps=10", "eval_every=10",
                 "eval_samples=200", "device=cpu", "--out", str(out)]) == 0
    capsys.readouterr()
    before = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert main(["train", "--resume", str(out), override, "steps=20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gantune train: "), err
    assert override.split("=")[0] in err[0], err
    after = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert after == before  # checkpoint.pt, config.yaml, metrics.json, history and samples as they were


def critic_weight_spectral_norms(trainer: Trainer) -> dict[str, float]:
    """The largest singular value of every weight matrix D uses in its forward pass.

    In eval mode reading ``weight`` gives the (parametrized) weight without another power iteration."""
    trainer.discriminator.eval()
    with torch.no_grad():
        return {name: torch.linalg.matrix_norm(module.weight, ord=2).item()
                for name, module in trainer.discriminator.named_modules()
                if isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding))}


@pytest.mark.parametrize("conditional", [False, True])
def test_spectral_norm_holds_each_critic_weight_at_unit_spectral_norm(grid25, conditional):
    trainer = Trainer(grid_config(loss="hinge", spectral_norm=True, conditional=conditional), grid25)
    trainer.run_steps(1)
    assert trainer.step == 1
    sigmas = critic_weight_spectral_norms(trainer)
    # Three hidden layers and the head, plus the projection embedding when conditional.
    assert len(sigmas) == (5 if conditional else 4), sigmas
    assert all(sigma == pytest.approx(1.0, abs=0.02) for sigma in sigmas.values()), sigmas


@pytest.mark.parametrize("make", [lambda: nn.Linear(7, 5), lambda: nn.Conv2d(3, 4, 3), lambda: nn.Embedding(10, 6)],
                         ids=["linear", "conv", "embedding"])
def test_gantunes_spectral_norm_is_pytorchs_bit_for_bit(make):
    """The batchable parametrization keeps PyTorch's start, arithmetic and buffer names."""
    from torch.nn.utils.parametrizations import spectral_norm

    from trainables.core.spectral import spectral_norm_

    layers = []
    for normalise in (spectral_norm, spectral_norm_):
        torch.manual_seed(0)
        layer = make()
        normalise(layer)
        layers.append(layer)
    ours, pytorchs = layers[1], layers[0]
    assert ours.state_dict().keys() == pytorchs.state_dict().keys()
    for _ in range(3):  # each training-mode read is one more power iteration
        assert torch.equal(ours.weight, pytorchs.weight)
    ours.load_state_dict(pytorchs.state_dict())


def test_without_spectral_norm_critic_weights_are_not_normalised(grid25):
    trainer = Trainer(grid_config(loss="hinge", spectral_norm=False), grid25)
    trainer.run_steps(1)
    sigmas = critic_weight_spectral_norms(trainer)
    assert len(sigmas) == 4
    assert max(abs(sigma - 1.0) for sigma in sigmas.values()) > 0.3, sigmas  # measured: 2.7 (input layer), 0.58 (head)


@pytest.fixture
def one_cpu_thread():
    """Small MLP steps run faster on one thread than split across two busy cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("gp_weight, holds", [(10.0, True), (1e-6, False)])
def test_the_gradient_penalty_holds_the_critics_gradient_norm_near_one(one_cpu_thread, gp_weight, holds):
    """The shipped WGAN-GP config trained 100 steps: with the penalty at its usual weight the critic's
    gradient norm at interpolates stays near 1 (measured penalty 0.03-0.07); with almost none it
    runs away (measured 5e6 and more). How many modes the config covers in its 5000 steps is
    ``bench/configs.py``'s to show."""
    reports = run_to_end(Trainer(load_config("configs/grid25_wgan_gp.yaml",
                                             ["device=cpu", "steps=100", "eval_every=100", f"gp_weight={gp_weight}"])))
    assert reports[-1]["status"] == "completed"
    assert (reports[-1]["gp"] < 0.2) == holds and (reports[-1]["gp"] > 100) == (not holds), reports[-1]["gp"]


def test_bench_configs_trains_a_shipped_config_and_prints_each_report():
    """``python bench/configs.py CONFIG key=value ...`` as the README shows it, cut to two reports."""
    done = subprocess.run([sys.executable, "bench/configs.py", "configs/ring8_gan.yaml", "steps=100", "eval_every=50",
                           "eval_samples=500"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert [line.split()[3] for line in lines] == ["50", "100"], lines
    assert all("modes_covered" in line and "js_modes" in line for line in lines), lines


def test_short_mnist_dcgan_run_lowers_fd(data_root, evaluator_cache):
    config = config_from_dict(
        dict(dataset="mnist", data_root=str(data_root), width=16, steps=300, eval_every=100, device="cpu")
    )
    reports = run_to_end(Trainer(config))
    assert [r["step"] for r in reports] == [100, 200, 300]
    fds = [r["fd"] for r in reports]
    assert fds[-1] < 0.8 * fds[0], fds
    # Every fd names the evaluator that measured it: the sha256 of the weights file in the cache.
    cached = {hashlib.sha256(path.read_bytes()).hexdigest() for path in evaluator_cache.rglob("*.safetensors")}
    assert {r["evaluator_hash"] for r in reports} <= cached and len({r["evaluator_hash"] for r in reports}) == 1
    # Measured: 10 classes and IS 2.55 at step 300, up from IS 1.04 at step 100; a generator that
    # does not learn stays near IS 1, a collapsed one covers a class or two.
    scores = [(r["classes_covered"], round(r["is"], 2)) for r in reports]
    assert reports[-1]["classes_covered"] >= 8, scores
    assert reports[-1]["is"] > 1.5 and reports[-1]["is"] > reports[0]["is"] + 0.5, scores


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_matches_eager_losses_on_gpu():
    data = load_dataset("grid25")
    config = grid_config(device="cuda", loss="wgan-gp", steps=20, eval_every=20)
    graph = run_to_end(Trainer(config, data))[-1]
    eager = run_to_end(Trainer(config_from_dict({**config.to_dict(), "cuda_graph": False}), data))[-1]
    for key in ("d_loss", "g_loss", "gp"):
        assert graph[key] == pytest.approx(eager[key], rel=1e-3, abs=1e-4), key
