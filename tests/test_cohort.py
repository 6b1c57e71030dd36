"""The cohort trainer: each slot is the single-trial trainer with its config, whatever the other slots do."""

from __future__ import annotations

import pytest
import torch
from images import read_scatter

from trainables.cohort.cohort import Cohort
from trainables.core.checkpoint import CHECKPOINT_FILE, SAMPLES_FILE, load_checkpoint
from trainables.core.config import config_from_dict
from trainables.core.report_loop import ReportFiles
from trainables.core.trainer import Trainer
from trainables.data.datasets import load_dataset
from trainables.errors import ConfigError

GRID25 = dict(dataset="grid25", arch="mlp", width=32, batch_size=64, latent_dim=8, steps=20, eval_every=5,
              eval_samples=500, device="cpu")
SIGNALS = ("d_loss", "g_loss", "wasserstein", "gp", "d_grad_norm", "g_grad_norm")
# Batched kernels sum in another order than one trial's. Measured over these runs: losses within
# 1e-5 relative; a WGAN critic's gradient norm (weights sitting at the clipping bound) within 4e-4.
TOLERANCE = dict(rel=1e-3, abs=1e-5)


@pytest.fixture(scope="module")
def grid25():
    return load_dataset("grid25", None)


def grid25_config(**overrides):
    return config_from_dict({**GRID25, **overrides})


def curves(reports) -> list[tuple]:
    return [(report["step"], *(report[key] for key in SIGNALS)) for report in reports]


def single_run(config, data) -> list[tuple]:
    return curves(Trainer(config, data).reports())


def cohort_run(configs, data, slots=None) -> dict[int, list[tuple]]:
    """Each slot's curves from one cohort holding ``configs`` (by slot index) until all retire."""
    cohort = Cohort(next(iter(configs.values())), slots or len(configs), data)
    for index, config in configs.items():
        cohort.fill(index, config)
    reports: dict[int, list] = {index: [] for index in configs}
    for slot_report in cohort.reports():
        reports[slot_report.slot].append(slot_report.report)
    return {index: curves(slot_reports) for index, slot_reports in reports.items()}


def assert_same_curves(got, expected):
    assert [row[0] for row in got] == [row[0] for row in expected]
    for got_row, expected_row in zip(got, expected):
        assert got_row == pytest.approx(expected_row, **TOLERANCE)


LOSS_CONFIGS = {
    "gan": dict(loss="gan"),
    "gan-minimax": dict(loss="gan", minimax=True),
    "lsgan": dict(loss="lsgan"),
    "hinge": dict(loss="hinge"),
    "wgan": dict(loss="wgan", clip=0.05),
    "wgan-gp": dict(loss="wgan-gp", gp_weight=1.0),
}


@pytest.mark.parametrize("name", LOSS_CONFIGS)
def test_a_cohort_of_one_reproduces_the_single_trainer(grid25, name):
    config = grid25_config(seed=3, **LOSS_CONFIGS[name])
    assert_same_curves(cohort_run({0: config}, grid25)[0], single_run(config, grid25))


def test_slots_with_different_losses_rates_and_ratios_each_follow_their_own_single_run(grid25):
    configs = {
        0: grid25_config(loss="gan", label_smoothing=0.2, lr_d=1e-3, seed=0),
        1: grid25_config(loss="hinge", d_steps=3, g_steps=2, lr_g=5e-4, beta1=0.0, beta2=0.9, seed=1),
        2: grid25_config(loss="wgan", clip=0.02, lr_d=5e-5, seed=2),  # RMSprop, five critic steps
        3: grid25_config(loss="wgan-gp", gp_weight=5.0, d_steps=2, optimizer="rmsprop", steps=15, seed=3),
    }
    together = cohort_run(configs, grid25)
    for index, config in configs.items():
        assert_same_curves(together[index], single_run(config, grid25))


def test_conditional_dcgan_slots_keep_their_own_batch_norm_statistics(data_root):
    """Batch norm in G and D, labels in both nets, and slots skipping sub-steps: the statistics a
    slot's forward passes update are its own, and untouched in the sub-steps it skips."""
    mnist = load_dataset("mnist", str(data_root))
    base = dict(dataset="mnist", data_root=str(data_root), arch="dcgan", width=8, batch_size=16, latent_dim=16,
                conditional=True, steps=6, eval_every=3, eval_samples=100, device="cpu")
    configs = {
        0: config_from_dict({**base, "loss": "gan", "minimax": True, "seed": 0}),
        1: config_from_dict({**base, "loss": "lsgan", "d_steps": 2, "g_steps": 2, "seed": 1}),
        2: config_from_dict({**base, "loss": "wgan", "d_steps": 3, "seed": 2}),
    }

    class NoQuality:  # this test is about training; the MNIST evaluator is tested elsewhere
        def evaluate(self, samples, labels):
            return {}

    cohort = Cohort(configs[0], 3, mnist)
    cohort.quality = NoQuality()
    for index, config in configs.items():
        cohort.fill(index, config)
    together: dict[int, list] = {index: [] for index in configs}
    for slot_report in cohort.reports():
        together[slot_report.slot].append(slot_report.report)
    for index, config in configs.items():
        single = Trainer(config, mnist)
        single.quality = NoQuality()
        assert_same_curves(curves(together[index]), curves(single.reports()))


def test_spectrally_normalised_critics_keep_their_own_power_iteration(grid25):
    """A critic's power iteration advances on each of its forward passes, so a penalised slot's
    critic runs on the interpolates and the others' critics do not."""
    configs = {0: grid25_config(loss="hinge", spectral_norm=True, seed=0),
               1: grid25_config(loss="gan", spectral_norm=True, d_steps=2, seed=1),
               2: grid25_config(loss="wgan-gp", gp_weight=10.0, spectral_norm=True, d_steps=2, seed=2)}
    together = cohort_run(configs, grid25)
    for index, config in configs.items():
        assert_same_curves(together[index], single_run(config, grid25))


def test_a_diverged_slot_ends_alone_and_the_others_train_as_if_it_were_never_there(grid25):
    configs = {0: grid25_config(loss="gan", seed=0), 1: grid25_config(loss="hinge", seed=1),
               2: grid25_config(loss="lsgan", seed=2)}
    cohort = Cohort(configs[0], 3, grid25)
    for index, config in configs.items():
        cohort.fill(index, config)
    first = {r.slot: r.report for r in cohort.advance()}
    with torch.no_grad():
        for stacked in cohort.generator.params.values():
            stacked[1] = float("nan")
    reports = {r.slot: r for r in cohort.advance()}
    diverged = reports[1].report
    assert diverged["status"] == "diverged" and reports[1].ended and diverged["step"] > first[1]["step"]
    assert not any(reports[index].ended for index in (0, 2))
    # Everything but the step and status is the slot's last finite report, the one before the NaN.
    kept = {key: value for key, value in diverged.items() if key not in ("step", "status")}
    assert kept == {key: value for key, value in first[1].items() if key not in ("step", "status")}
    with pytest.raises(ValueError, match="retire"):
        cohort.advance()
    cohort.retire(1)
    assert cohort.live_slots() == [0, 2]
    every = {index: [first[index], reports[index].report] for index in (0, 2)}
    for slot_report in cohort.reports():
        every[slot_report.slot].append(slot_report.report)
    for index in (0, 2):
        assert_same_curves(curves(every[index]), single_run(configs[index], grid25))


def test_a_refilled_slot_starts_like_a_fresh_single_trial(grid25):
    short = grid25_config(loss="gan", steps=5, seed=0)
    long = grid25_config(loss="hinge", seed=1)
    refill = grid25_config(loss="wgan-gp", gp_weight=1.0, lr_d=1e-3, seed=7, steps=10)
    cohort = Cohort(short, 2, grid25)
    cohort.fill(0, short)
    cohort.fill(1, long)
    first = cohort.advance()
    assert {r.slot: r.ended for r in first} == {0: True, 1: False}
    cohort.retire(0)
    cohort.fill(0, refill)
    refilled = []
    for slot_report in cohort.reports():
        if slot_report.slot == 0:
            refilled.append(slot_report.report)
    assert_same_curves(curves(refilled), single_run(refill, grid25))


def test_a_slots_checkpoint_is_a_single_trial_checkpoint_that_continues_the_same_run(grid25, tmp_path):
    config = grid25_config(loss="wgan-gp", gp_weight=1.0, seed=4)
    cohort = Cohort(config, 2, grid25)
    cohort.fill(1, config)
    cohort.advance()
    cohort.advance()
    cohort.save_files(1, ReportFiles.in_folder(tmp_path))
    assert load_checkpoint(tmp_path / CHECKPOINT_FILE)["step"] == 10
    read_scatter(tmp_path / SAMPLES_FILE)
    continued = Trainer.from_checkpoint(tmp_path / CHECKPOINT_FILE, data=grid25)
    assert_same_curves(curves(continued.reports()), single_run(config, grid25)[2:])
    # And a cohort slot continues it as well.
    resumed = Cohort(config, 1, grid25)
    resumed.fill(0, config, checkpoint=tmp_path / CHECKPOINT_FILE)
    assert_same_curves(curves(r.report for r in resumed.reports()), single_run(config, grid25)[2:])


def test_trials_of_another_shape_cannot_join(grid25):
    cohort = Cohort(grid25_config(), 2, grid25)
    with pytest.raises(ConfigError, match="another shape"):
        cohort.fill(0, grid25_config(width=64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_graph_replays_the_eager_cohort_step():
    data = load_dataset("grid25", None)
    configs = {0: grid25_config(device="cuda", loss="gan", seed=0, steps=40, eval_every=20),
               1: grid25_config(device="cuda", loss="wgan-gp", gp_weight=1.0, d_steps=2, seed=1, steps=40, eval_every=20)}
    graphed = cohort_run(configs, data)
    eager = cohort_run({i: config_from_dict({**c.to_dict(), "cuda_graph": False}) for i, c in configs.items()}, data)
    for index in configs:
        assert_same_curves(graphed[index], eager[index])
