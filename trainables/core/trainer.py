"""The GAN trainer: one readable training loop for every variant a config composes.

A training step is ``d_steps`` critic updates followed by ``g_steps`` generator updates. The
loss, the critic's regulariser (gradient penalty or weight clipping), the architecture and the
conditioning are all chosen once, when the trainer is built, from the axes' specs; the step asks
only whether a penalty, a constraint or labels are in play, never which loss or network it runs.

The step never synchronises with the device: training signals are summed into a tensor on the
device and read once per report. On CUDA the whole step is captured in one CUDA graph (the nets
are small enough that kernel launches, not arithmetic, bound eager training); on the CPU, or with
``cuda_graph: false``, the same Python code runs eagerly. With ``mixed_precision: bf16`` the
step's forward passes run under bfloat16 autocast (``precision.py``).
"""

from __future__ import annotations

import math
import time
from functools import cached_property, partial
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from torch import Tensor, nn

from trainables.core.checkpoint import load_checkpoint, save_checkpoint
from trainables.core.config import TrainConfig, config_from_dict, resolve_device
from trainables.core.cuda_graph import RepeatedStep
from trainables.core.losses import LOSSES, build_loss
from trainables.core.models import build_discriminator, build_generator
from trainables.core.optimizers import build_optimizer
from trainables.core.pictures import picture_size, write_picture
from trainables.core.precision import training_autocast
from trainables.core.schedule import ends_run, steps_to_report
from trainables.data.datasets import load_data, resolve_files
from trainables.data.loading import balanced_labels, to_device
from trainables.data.records import DataBundle
from trainables.errors import ConfigError
from trainables.quality.scoring import build_quality

CRITIC_SIGNALS = ("d_loss", "wasserstein", "gp", "d_grad_norm")
GENERATOR_SIGNALS = ("g_loss", "g_grad_norm")
# Every training signal a report carries, beside the dataset's quality metrics.
TRAINING_SIGNALS = (*CRITIC_SIGNALS, *GENERATOR_SIGNALS, "steps_per_s")
SAMPLE_CHUNK = 1000
# Keys that shape the saved state (weights, normalisation layers, optimizer moments): a resumed
# run keeps them, since its checkpoint would not fit a trainer built with other values.
STATE_KEYS = ("dataset", "image_size", "channels", "num_classes", "arch", "width", "latent_dim", "conditional",
              "spectral_norm", "loss", "optimizer")


def _grad_norm(module: nn.Module) -> Tensor:
    return torch.nn.utils.get_total_norm([p.grad for p in module.parameters() if p.grad is not None])


class Trainer:
    def __init__(self, config: TrainConfig, data: DataBundle | None = None):
        """``data``: the config's dataset when the caller holds it already (a resolved config's, for
        the user's files); otherwise it is loaded, and the config resolved against the files first."""
        config = resolve_files(config)
        self.config = config
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        self.data = to_device(data or load_data(config), self.device)
        self.generator = build_generator(config).to(self.device)
        self.discriminator = build_discriminator(config).to(self.device)
        self.use_graph = config.cuda_graph and self.device.type == "cuda"
        self.opt_g = build_optimizer(config, self.generator.parameters(), config.lr_g, self.use_graph)
        self.opt_d = build_optimizer(config, self.discriminator.parameters(), config.lr_d, self.use_graph)
        self.loss = build_loss(config)
        self.critic_penalty, self.penalty_weight, self.critic_constraint = self._critic_regulariser()
        self._autocast = partial(training_autocast, self.device, config.mixed_precision)
        self.step = 0
        self.last_report: dict[str, Any] = {}
        self._critic_sums = torch.zeros(len(CRITIC_SIGNALS), device=self.device)
        self._generator_sums = torch.zeros(len(GENERATOR_SIGNALS), device=self.device)
        self._repeat_step = RepeatedStep(self._train_step, self.device, self.use_graph)

    def _critic_regulariser(self) -> tuple[Any, float, Any]:
        """The loss's regulariser bound to D at the config's strength: (penalty, its weight, constraint).

        A strength of zero (``gp_weight: 0``) turns it off, so no penalty is computed at all.
        """
        regulariser = LOSSES[self.config.loss].regulariser
        strength = getattr(self.config, regulariser.key) if regulariser else 0.0
        if not strength:
            return None, 0.0, None
        penalty = partial(regulariser.penalty, self.discriminator) if regulariser.penalty else None
        constraint = partial(regulariser.constraint, self.discriminator, strength) if regulariser.constraint else None
        return penalty, strength if penalty else 0.0, constraint

    @cached_property
    def quality(self):
        """Built on first evaluation: training an image evaluator is needless for sampling or benchmarks."""
        return build_quality(self.data, self.device, evaluator=self.config.evaluator)

    # ----------------------------------------------------------------- the training step
    def _labels(self, batch_size: int) -> Tensor | None:
        """Class labels for a conditional generator, drawn with the training set's frequencies."""
        if not self.config.conditional:
            return None
        index = torch.randint(0, self.data.train_y.shape[0], (batch_size,), device=self.device)
        return self.data.train_y[index]

    def _noise(self, batch_size: int) -> Tensor:
        return torch.randn(batch_size, self.config.latent_dim, device=self.device)

    def _critic_step(self) -> None:
        real, labels = self.data.batch(self.config.batch_size)
        labels = labels if self.config.conditional else None
        with self._autocast():
            with torch.no_grad():
                fake = self.generator(self._noise(real.shape[0]), labels)
            real_scores = self.discriminator(real, labels)
            fake_scores = self.discriminator(fake, labels)
            loss = self.loss.discriminator(real_scores, fake_scores)
            penalty = (self.critic_penalty(real, fake, labels) if self.critic_penalty
                       else torch.zeros((), device=self.device))
        self.opt_d.zero_grad(set_to_none=True)
        (loss + self.penalty_weight * penalty).backward()
        grad_norm = _grad_norm(self.discriminator)
        self.opt_d.step()
        if self.critic_constraint:
            self.critic_constraint()
        wasserstein = real_scores.mean() - fake_scores.mean()
        self._critic_sums += torch.stack([loss, wasserstein, penalty, grad_norm]).detach()

    def _generator_step(self) -> None:
        batch_size = self.config.batch_size
        labels = self._labels(batch_size)
        with self._autocast():
            loss = self.loss.generator(self.discriminator(self.generator(self._noise(batch_size), labels), labels))
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = _grad_norm(self.generator)
        self.opt_g.step()
        self._generator_sums += torch.stack([loss, grad_norm]).detach()

    def _train_step(self) -> None:
        for _ in range(self.config.d_steps):
            self._critic_step()
        for _ in range(self.config.g_steps):
            self._generator_step()

    def run_steps(self, count: int) -> None:
        """Train ``count`` steps without reporting; the work happens asynchronously on a GPU."""
        self._repeat_step(count)
        self.step += count

    # -------------------------------------------------------------------------- reporting
    def _drain_signals(self, steps: int) -> dict[str, float]:
        """Read and reset the summed signals: the one host-device sync of a report interval."""
        critic = (self._critic_sums / (steps * self.config.d_steps)).tolist()
        generator = (self._generator_sums / (steps * self.config.g_steps)).tolist()
        self._critic_sums.zero_()
        self._generator_sums.zero_()
        return dict(zip(CRITIC_SIGNALS + GENERATOR_SIGNALS, critic + generator))

    def all_finite(self, samples: Tensor) -> bool:
        """Whether every weight of G and D, and the evaluation samples, are finite."""
        tensors = [*self.generator.parameters(), *self.discriminator.parameters(), samples]
        return bool(torch.stack([t.isfinite().all() for t in tensors]).all())

    def reports(self) -> Iterator[dict[str, Any]]:
        """Train to ``config.steps``, yielding a report where ``trainables.core.schedule`` puts them;
        a diverged report ends training."""
        config = self.config
        while self.step < config.steps:
            interval = steps_to_report(self.step, config.eval_every, config.steps)
            started = time.perf_counter()
            self.run_steps(interval)
            signals = self._drain_signals(interval)
            report = self.evaluate(signals, interval / (time.perf_counter() - started))
            yield report
            if ends_run(report):
                return

    def evaluate(self, signals: Mapping[str, float], steps_per_s: float) -> dict[str, Any]:
        """The report at the current step: the interval's training ``signals`` and the quality metrics.

        A non-finite signal, weight or sample makes it a ``diverged`` report that keeps the last
        finite metrics.
        """
        config = self.config
        labels = self._balanced_labels(config.eval_samples)
        samples = self.sample(config.eval_samples, labels)
        if not (all(map(math.isfinite, signals.values())) and self.all_finite(samples)):
            return {**self.last_report, "step": self.step, "status": "diverged"}
        status = "completed" if self.step >= config.steps else "running"
        self.last_report = {"step": self.step, "status": status, **signals, "steps_per_s": steps_per_s}
        self.last_report.update(self.quality.evaluate(samples, labels))
        return self.last_report

    def _balanced_labels(self, n: int) -> Tensor | None:
        return balanced_labels(n, self.data.spec.num_classes, self.device) if self.config.conditional else None

    # --------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, n: int, labels: Tensor | None = None, seed: int = 0) -> Tensor:
        """``n`` samples in eval mode from a private RNG, so sampling never shifts training's RNG."""
        generator = torch.Generator(device=self.device).manual_seed(seed)
        was_training = self.generator.training
        self.generator.eval()
        chunks = []
        for start in range(0, n, SAMPLE_CHUNK):
            size = min(SAMPLE_CHUNK, n - start)
            z = torch.randn(size, self.config.latent_dim, device=self.device, generator=generator)
            chunk_labels = labels[start : start + size] if labels is not None else None
            chunks.append(self.generator(z, chunk_labels))
        self.generator.train(was_training)
        return torch.cat(chunks)

    def save_samples(self, path: str | Path) -> None:
        """The generator's picture: a grid of images (a row per class if conditional), or a 2-D scatter."""
        count, rows = picture_size(self.data.spec, self.config.conditional)
        write_picture(path, self.sample(count, self._balanced_labels(count)), self.data.spec, rows)

    # ------------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | Path) -> None:
        rng = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        save_checkpoint(
            path,
            {
                "config": self.config.to_dict(),
                "step": self.step,
                "generator": self.generator.state_dict(),
                "discriminator": self.discriminator.state_dict(),
                "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(),
                "rng": rng,
                "metrics": self.last_report,
            },
        )

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, overrides: Mapping[str, Any] | None = None, data: DataBundle | None = None
    ) -> "Trainer":
        """Continue a saved run with ``overrides`` applied to its config.

        Any key may change (the schedule, the device, or, as PBT does, learning rates and D:G steps)
        except the ``STATE_KEYS``, which shape what the checkpoint holds: changing one is a
        ConfigError that names it.
        """
        state = load_checkpoint(path)
        saved = state["config"]
        config = config_from_dict({**saved, **(overrides or {})})
        for key in STATE_KEYS:
            if getattr(config, key) != saved[key]:
                raise ConfigError(f"resume: {key} cannot change on resume (the checkpoint has {saved[key]!r}, asked "
                                  f"{getattr(config, key)!r}): it shapes the saved weights; start a new run instead")
        trainer = cls(config, data)
        trainer.generator.load_state_dict(state["generator"])
        trainer.discriminator.load_state_dict(state["discriminator"])
        trainer.opt_g.load_state_dict(state["opt_g"])
        trainer.opt_d.load_state_dict(state["opt_d"])
        for optimizer, lr in ((trainer.opt_g, trainer.config.lr_g), (trainer.opt_d, trainer.config.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = lr
        trainer.step = state["step"]
        trainer.last_report = dict(state["metrics"])
        torch.set_rng_state(state["rng"]["cpu"])
        if trainer.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], trainer.device)
        return trainer

