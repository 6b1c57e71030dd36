"""``mixed_precision: bf16``: the step's matmuls and convolutions in bfloat16, everything kept in float32."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from trainables.cohort.cohort import Cohort
from trainables.core.checkpoint import load_checkpoint
from trainables.core.config import config_from_dict
from trainables.core.trainer import Trainer
from trainables.data.datasets import load_dataset

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
# The kernels autocast lowers: forward and backward matmuls and convolutions.
COMPUTE_OPS = {"mm", "addmm", "bmm", "baddbmm", "convolution", "convolution_backward"}
GRID25 = dict(dataset="grid25", arch="mlp", width=32, batch_size=64, latent_dim=8, steps=20, eval_every=10,
              eval_samples=500)
MNIST = dict(dataset="mnist", arch="dcgan", batch_size=16, latent_dim=16, steps=4, eval_every=4, eval_samples=500)


class ComputeDtypes(TorchDispatchMode):
    """Records the dtype each matmul and convolution kernel ran in."""

    def __init__(self):
        super().__init__()
        self.seen: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name in COMPUTE_OPS:
            self.seen[name, args[0].dtype] += 1
        return func(*args, **(kwargs or {}))

    def dtypes(self) -> set[torch.dtype]:
        return {dtype for _, dtype in self.seen}


def config(base, device="cpu", **overrides):
    return config_from_dict({**base, "device": device, "mixed_precision": "bf16", "cuda_graph": False, **overrides})


@pytest.fixture(scope="module")
def grid25():
    return load_dataset("grid25", None)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_the_trainers_step_computes_in_bf16_and_keeps_weights_moments_and_checkpoints_in_fp32(device, mnist, tmp_path):
    trainer = Trainer(config(MNIST, device, loss="wgan-gp"), mnist)
    with ComputeDtypes() as compute:
        trainer.run_steps(2)
    assert compute.dtypes() == {torch.bfloat16}
    assert {name for name, _ in compute.seen} >= {"convolution", "convolution_backward"}

    trainer.save_checkpoint(tmp_path / "checkpoint.pt")
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    saved = [*state["generator"].values(), *state["discriminator"].values()]
    moments = [value for opt in ("opt_g", "opt_d") for slot in state[opt]["state"].values()
               for key, value in slot.items() if key != "step"]
    assert {tensor.dtype for tensor in saved + moments if tensor.is_floating_point()} == {torch.float32}
    with ComputeDtypes() as compute:
        samples = trainer.sample(8)
    assert samples.dtype == torch.float32 and compute.dtypes() == {torch.float32}


def test_bf16_curves_differ_from_fp32_by_rounding_only(grid25):
    def curve(mixed_precision):
        trainer = Trainer(config(GRID25, loss="lsgan", mixed_precision=mixed_precision), grid25)
        return [(report["d_loss"], report["g_loss"]) for report in trainer.reports()]

    fp32, bf16 = curve("fp32"), curve("bf16")
    assert bf16 != fp32
    for bf16_row, fp32_row in zip(bf16, fp32):
        assert bf16_row == pytest.approx(fp32_row, rel=0.02)


def test_a_bf16_cohort_slot_follows_its_bf16_single_run(grid25):
    slot_config = config(GRID25, loss="wgan-gp", gp_weight=1.0, d_steps=2, seed=3)
    single = [report[key] for report in Trainer(slot_config, grid25).reports() for key in ("d_loss", "g_loss")]

    def cohort():
        cohort = Cohort(slot_config, 2, grid25)
        cohort.fill(0, config(GRID25, loss="gan", seed=1))
        cohort.fill(1, slot_config)
        return cohort

    with ComputeDtypes() as compute:
        cohort().run_steps(1)
    assert compute.dtypes() == {torch.bfloat16}
    slot_reports = [report.report for report in cohort().reports() if report.slot == 1]
    assert [report[key] for report in slot_reports for key in ("d_loss", "g_loss")] == pytest.approx(single, rel=0.02)


@needs_cuda
def test_a_bf16_dcgan_cohort_convolves_in_bf16_and_trains_in_its_cuda_graph(mnist):
    cohort = Cohort(config(MNIST, "cuda", cuda_graph=True), 4, mnist)
    for index in range(4):
        cohort.fill(index, config(MNIST, "cuda", cuda_graph=True, seed=index))
    with ComputeDtypes() as compute:
        cohort.run_steps(1)
    assert compute.dtypes() == {torch.bfloat16}
    cohort.run_steps(10)
    assert cohort._repeat_step.graph is not None
    weights = [*cohort.generator.params.values(), *cohort.discriminator.params.values()]
    assert all(bool(weight.isfinite().all()) for weight in weights)
