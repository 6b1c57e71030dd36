"""The cohort trainer: K trials of one shape trained as one model, one step for all of them.

A small GAN trial leaves a GPU idle between kernel launches. A cohort stacks K trials' weights
along a leading slot dimension and runs the nets with ``torch.func.vmap`` over
``functional_call``: each layer is one batched kernel for all K slots (vmap turns a convolution
over stacked weights into one grouped convolution), and the whole step is one CUDA graph.

Slots share only the *shape* of the nets (``cohort_shape``). Everything else is a slot's own:
loss, regulariser strength, D:G steps, optimizer and its settings, seed and step budget. What a
slot does is exactly what a single-trial ``Trainer`` with its config does: its weights start
from its seed, its random draws come from its own stream in the trainer's order, its batch-norm
statistics and optimizer state are its own, and a slot with fewer critic or generator steps
than the cohort's maximum is masked in the sub-steps it skips (weights, optimizer moments and
normalisation statistics untouched, and no random draw). A slot converts to a ``Trainer`` and
back, so its checkpoints, samples and evaluation are the single trainer's own.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from trainables.config import TrainConfig, resolve_device
from trainables.cuda_graph import GRAPH_WARMUP_STEPS, capture_step
from trainables.data import DataBundle
from trainables.datasets import load_dataset
from trainables.errors import ConfigError
from trainables.losses import GRADIENT_PENALTY, LOSSES, WEIGHT_CLIPPING, LossPair, build_loss, interpolation_weights, slope_penalty
from trainables.models import build_discriminator
from trainables.quality import build_quality
from trainables.report_loop import ReportFiles
from trainables.slot_optimizers import SlotOptimizers
from trainables.trainer import CRITIC_SIGNALS, GENERATOR_SIGNALS, Trainer

# What every slot of a cohort shares: the nets' shapes (and so the stacked weights), the batch,
# the device, and the evaluation schedule, whose boundaries are where slots report.
SHAPE_KEYS = ("dataset", "data_root", "arch", "width", "batch_size", "latent_dim", "conditional", "spectral_norm",
              "device", "cuda_graph", "eval_every", "eval_samples")


def cohort_shape(config: TrainConfig) -> tuple:
    """The key trials must share to train in one cohort: the ``SHAPE_KEYS`` and D's tensors, which
    other axes can change (a gradient penalty takes batch norm out of a DCGAN critic)."""
    with torch.device("meta"):
        critic = build_discriminator(config)
    return (*(getattr(config, key) for key in SHAPE_KEYS),
            tuple((name, tuple(value.shape)) for name, value in critic.state_dict().items()))


@dataclass
class SlotReport:
    """A slot's report at an evaluation boundary; ``ended`` when the trial completed or diverged."""

    slot: int
    config: TrainConfig
    report: dict[str, Any]
    ended: bool


@dataclass
class _Slot:
    """A live slot's own state beside its stacked tensors."""

    config: TrainConfig
    loss: LossPair
    rng: torch.Generator
    step: int
    last_report: dict[str, Any]
    penalty_weight: float
    clipped: bool
    ended: bool = False
    interval_steps: int = 0
    interval_started: float = field(default_factory=time.perf_counter)


def _stream_of_new_trainer(device: torch.device) -> torch.Generator:
    """A private generator at the default generator's state: the stream a just-built ``Trainer`` draws from."""
    rng = torch.Generator(device=device)
    rng.set_state(torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state())
    return rng


def _slot_view(values: Tensor, like: Tensor) -> Tensor:
    """One value per slot, shaped to broadcast over a stacked tensor ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def _slot_grad_norms(grads: list[Tensor]) -> Tensor:
    """Each slot's total gradient 2-norm over all of a net's parameters."""
    return torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()


def _batched_net(module: nn.Module, conditional: bool) -> Callable[..., Tensor]:
    """``module`` applied slot by slot to stacked weights, buffers, inputs and labels."""
    structure = copy.deepcopy(module).to("meta")

    def call(params, buffers, inputs, labels):
        return functional_call(structure, (params, buffers), (inputs, labels))

    return vmap(call, in_dims=(0, 0, 0, 0 if conditional else None))


class _StackedNet:
    """One net's weights and buffers for every slot, the batched forward, and the slots' optimizers."""

    def __init__(self, module: nn.Module, slots: int, conditional: bool):
        self.params, self.buffers = stack_module_state([module] * slots)
        self.forward = _batched_net(module, conditional)
        self.optimizers = SlotOptimizers(list(self.params.values()), slots)

    def __call__(self, inputs: Tensor, labels: Tensor | None) -> Tensor:
        return self.forward(self.params, self.buffers, inputs, labels)

    def load_slot(self, slot: int, module: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            for name, value in module.state_dict().items():
                stacked = self.params[name] if name in self.params else self.buffers[name]
                stacked[slot] = value
        self.optimizers.load_slot(slot, optimizer)

    def write_slot(self, slot: int, module: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        state = {name: value[slot].detach().clone() for name, value in {**self.params, **self.buffers}.items()}
        module.load_state_dict(state)
        self.optimizers.slot_state(slot, optimizer)

    @contextmanager
    def buffers_kept_unless(self, active: Tensor) -> Iterator[None]:
        """Batch-norm statistics that a forward pass updates change only in the ``active`` slots."""
        before = {name: buffer.clone() for name, buffer in self.buffers.items()}
        yield
        with torch.no_grad():
            for name, buffer in self.buffers.items():
                buffer.copy_(torch.where(_slot_view(active, buffer), buffer, before[name]))


class Cohort:
    """Up to ``slots`` trials whose configs share ``shape``'s ``cohort_shape``, trained in one step.

    ``fill`` puts a trial into a free slot (fresh from its seed, or continued from a checkpoint);
    ``advance`` trains until at least one slot reaches a report and returns those reports;
    ``retire`` takes a trial out (one that ended, or one a pruner stopped), and its slot can be
    filled again while the others go on.
    """

    def __init__(self, shape: TrainConfig, slots: int, data: DataBundle | None = None):
        self.shape = shape
        self.shape_key = cohort_shape(shape)
        self.capacity = slots
        self.device = resolve_device(shape.device)
        self.data = (data or load_dataset(shape.dataset, shape.data_root)).to(self.device)
        template = Trainer(shape, self.data)
        self.generator = _StackedNet(template.generator, slots, shape.conditional)
        self.discriminator = _StackedNet(template.discriminator, slots, shape.conditional)
        self.use_graph = template.use_graph
        self.slots: list[_Slot | None] = [None] * slots
        self.gp_weight = torch.zeros(slots, device=self.device)
        self.clip = torch.full((slots,), math.inf, device=self.device)
        self.critic_sums = torch.zeros(slots, len(CRITIC_SIGNALS), device=self.device)
        self.generator_sums = torch.zeros(slots, len(GENERATOR_SIGNALS), device=self.device)
        self.critic_counts = torch.zeros(slots, device=self.device)
        self.generator_counts = torch.zeros(slots, device=self.device)
        self._graph: torch.cuda.CUDAGraph | None = None
        self._plan: tuple[list, list] | None = None

    @cached_property
    def quality(self):
        """One evaluator for every slot."""
        return build_quality(self.data, self.device)

    # ------------------------------------------------------------------------- slots
    def free_slots(self) -> list[int]:
        return [index for index, slot in enumerate(self.slots) if slot is None]

    def live_slots(self) -> list[int]:
        return [index for index, slot in enumerate(self.slots) if slot is not None]

    def fill(self, index: int, config: TrainConfig, checkpoint: str | Path | None = None) -> None:
        """Start ``config``'s trial in free slot ``index``: from its seed, or from a single-trial ``checkpoint``."""
        if self.slots[index] is not None:
            raise ValueError(f"slot {index} is in use")
        if cohort_shape(config) != self.shape_key:
            raise ConfigError(f"cohort: a trial with another shape cannot join (shape keys {', '.join(SHAPE_KEYS)} and "
                              "the critic's layers must match)")
        regulariser = LOSSES[config.loss].regulariser
        if regulariser not in (None, GRADIENT_PENALTY, WEIGHT_CLIPPING):
            raise ConfigError(f"cohort: the {config.loss} loss's regulariser has no batched form")
        trainer = Trainer.from_checkpoint(checkpoint, config.to_dict(), self.data) if checkpoint else Trainer(config, self.data)
        rng = _stream_of_new_trainer(self.device)
        self.generator.load_slot(index, trainer.generator, trainer.opt_g)
        self.discriminator.load_slot(index, trainer.discriminator, trainer.opt_d)
        strength = float(getattr(config, regulariser.key) or 0.0) if regulariser else 0.0
        self.gp_weight[index] = strength if regulariser is GRADIENT_PENALTY else 0.0
        self.clip[index] = strength if regulariser is WEIGHT_CLIPPING and strength else math.inf
        for sums in (self.critic_sums, self.generator_sums, self.critic_counts, self.generator_counts):
            sums[index] = 0.0
        self.slots[index] = _Slot(config, build_loss(config), rng, trainer.step, dict(trainer.last_report),
                                  float(self.gp_weight[index]), bool(self.clip[index] < math.inf))
        self._changed()

    def retire(self, index: int) -> None:
        """Take slot ``index``'s trial out; the others go on, and the slot may be filled again."""
        self.slots[index] = None
        self._changed()

    def _changed(self) -> None:
        """The slots changed: the sub-step masks are planned again, and the CUDA graph captured again."""
        self._graph = None
        self._plan = None

    def trainer(self, index: int) -> Trainer:
        """Slot ``index`` as a single-trial ``Trainer``: same weights, optimizer state, step and last report.

        Its RNG is the global one, as a ``Trainer``'s is, so training it further draws from the
        global stream; ``save_checkpoint`` stores the slot's own stream.
        """
        slot = self.slots[index]
        trainer = Trainer(slot.config, self.data)
        trainer.quality = self.quality
        self.generator.write_slot(index, trainer.generator, trainer.opt_g)
        self.discriminator.write_slot(index, trainer.discriminator, trainer.opt_d)
        trainer.step, trainer.last_report = slot.step, dict(slot.last_report)
        return trainer

    def save_files(self, index: int, files: ReportFiles) -> None:
        """Slot ``index``'s sample picture and single-trial checkpoint, which ``Trainer.from_checkpoint``
        continues (with the slot's own random stream)."""
        trainer = self.trainer(index)
        trainer.save_samples(files.samples)
        state = self.slots[index].rng.get_state()
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(state, self.device)
        else:
            torch.set_rng_state(state)
        trainer.save_checkpoint(files.checkpoint)

    # --------------------------------------------------------------------- the step
    def _masks(self, sub_steps: str) -> list[tuple[list[bool], Tensor]]:
        """For each critic (or generator) sub-step of the cohort's step, which slots take part in it,
        as a list and as a tensor on the device (made here, since a CUDA graph cannot copy one in)."""
        counts = [getattr(slot.config, sub_steps) if slot else 0 for slot in self.slots]
        masks = [[count > sub_step for count in counts] for sub_step in range(max(counts, default=0))]
        return [(mask, torch.tensor(mask, device=self.device)) for mask in masks]

    def _everyone(self, takes_part: list[bool]) -> bool:
        """Every slot takes part (all filled and none skipping): no state needs keeping."""
        return all(takes_part)

    def _draw(self, takes_part: list[bool], draw: Callable[[_Slot], Tensor], empty: Tensor) -> Tensor:
        """One draw per taking-part slot from its own stream, stacked; ``empty`` where a slot draws nothing."""
        return torch.stack([draw(slot) if part else empty for slot, part in zip(self.slots, takes_part)])

    def _noise(self, slot: _Slot) -> Tensor:
        return torch.randn(self.shape.batch_size, self.shape.latent_dim, device=self.device, generator=slot.rng)

    def _per_slot(self, takes_part: list[bool], value: Callable[[int], Tensor]) -> Tensor:
        zero = torch.zeros((), device=self.device)
        return torch.stack([value(index) if part else zero for index, part in enumerate(takes_part)])

    def _critic_step(self, takes_part: list[bool], active: Tensor) -> None:
        batch = self.shape.batch_size
        real_index = self._draw(takes_part, lambda s: torch.randint(0, self.data.train_x.shape[0], (batch,),
                                                                     device=self.device, generator=s.rng),
                                torch.zeros(batch, dtype=torch.long, device=self.device))
        real, labels = self.data.train_x[real_index], self.data.train_y[real_index]
        labels = labels if self.shape.conditional else None
        z = self._draw(takes_part, self._noise, torch.zeros(batch, self.shape.latent_dim, device=self.device))
        with torch.no_grad():
            fake = self.generator(z, labels)
        real_scores = self.discriminator(real, labels)
        fake_scores = self.discriminator(fake, labels)
        losses = self._per_slot(takes_part, lambda k: self.slots[k].loss.discriminator(real_scores[k], fake_scores[k]))
        penalties = self._penalties(takes_part, real, fake, labels)
        grads = list(torch.autograd.grad((losses + self.gp_weight * penalties).sum(),
                                         list(self.discriminator.params.values())))
        norms = _slot_grad_norms(grads)
        self.discriminator.optimizers.step(grads, active, self._everyone(takes_part))
        self._clip(active)
        wasserstein = real_scores.mean(1) - fake_scores.mean(1)
        signals = torch.stack([losses, wasserstein, penalties, norms], dim=1).detach()
        self.critic_sums += torch.where(active[:, None], signals, 0.0)
        self.critic_counts += active

    def _penalties(self, takes_part: list[bool], real: Tensor, fake: Tensor, labels: Tensor | None) -> Tensor:
        """Each penalised slot's gradient penalty, with its own interpolation weights; zero elsewhere."""
        penalised = [part and slot.penalty_weight > 0 for part, slot in zip(takes_part, self.slots)]
        if not any(penalised):
            return torch.zeros(self.capacity, device=self.device)
        mix = self._draw(penalised, lambda s: interpolation_weights(real[0], s.rng),
                         real.new_zeros(real.shape[1:2] + (1,) * (real.dim() - 2)))
        interpolates = (mix * real + (1.0 - mix) * fake.detach()).requires_grad_(True)
        scores = self.discriminator(interpolates, labels)
        (grads,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
        return self._per_slot(penalised, lambda k: slope_penalty(grads[k]))

    @torch.no_grad()
    def _clip(self, active: Tensor) -> None:
        """WGAN's weight clipping, at each clipped slot's own bound."""
        if not any(slot is not None and slot.clipped for slot in self.slots):
            return
        for param in self.discriminator.params.values():
            bound = _slot_view(self.clip, param)
            clipped = torch.maximum(torch.minimum(param, bound), -bound)
            param.copy_(torch.where(_slot_view(active, param), clipped, param))

    def _generator_step(self, takes_part: list[bool], active: Tensor) -> None:
        batch = self.shape.batch_size
        labels = None
        if self.shape.conditional:
            label_index = self._draw(takes_part, lambda s: torch.randint(0, self.data.train_y.shape[0], (batch,),
                                                                          device=self.device, generator=s.rng),
                                     torch.zeros(batch, dtype=torch.long, device=self.device))
            labels = self.data.train_y[label_index]
        z = self._draw(takes_part, self._noise, torch.zeros(batch, self.shape.latent_dim, device=self.device))
        scores = self.discriminator(self.generator(z, labels), labels)
        losses = self._per_slot(takes_part, lambda k: self.slots[k].loss.generator(scores[k]))
        grads = list(torch.autograd.grad(losses.sum(), list(self.generator.params.values())))
        norms = _slot_grad_norms(grads)
        self.generator.optimizers.step(grads, active, self._everyone(takes_part))
        self.generator_sums += torch.where(active[:, None], torch.stack([losses, norms], dim=1).detach(), 0.0)
        self.generator_counts += active

    def _train_step(self) -> None:
        if self._plan is None:
            self._plan = self._masks("d_steps"), self._masks("g_steps")
        critic_masks, generator_masks = self._plan
        for takes_part, active in critic_masks:
            with self._statistics_kept_unless(takes_part, active):
                self._critic_step(takes_part, active)
        for takes_part, active in generator_masks:
            with self._statistics_kept_unless(takes_part, active):
                self._generator_step(takes_part, active)

    @contextmanager
    def _statistics_kept_unless(self, takes_part: list[bool], active: Tensor) -> Iterator[None]:
        """Both nets' batch-norm statistics change in a sub-step only for the slots taking part.
        (Restored after the backward pass, which reads the statistics the forward pass saw.)"""
        if self._everyone(takes_part):
            yield
            return
        with self.generator.buffers_kept_unless(active), self.discriminator.buffers_kept_unless(active):
            yield

    def run_steps(self, count: int) -> None:
        """Train every live slot ``count`` steps; on CUDA, replays of one captured cohort step."""
        done = 0
        if self.use_graph and self._graph is None and count > GRAPH_WARMUP_STEPS:
            rngs = [slot.rng for slot in self.slots if slot is not None]
            self._graph = capture_step(self._train_step, self.device, rngs)  # its warm-up steps train
            done = GRAPH_WARMUP_STEPS
        run_one = self._graph.replay if self._graph is not None else self._train_step
        for _ in range(count - done):
            run_one()
        for slot in self.slots:
            if slot is not None:
                slot.step += count
                slot.interval_steps += count

    # -------------------------------------------------------------------------- reports
    def _until_next_report(self, slot: _Slot) -> int:
        eval_every = self.shape.eval_every
        return min(eval_every - slot.step % eval_every, slot.config.steps - slot.step)

    def _drain_signals(self, index: int) -> dict[str, float]:
        """Read and reset slot ``index``'s summed signals, averaged as the single trainer averages them."""
        critic = (self.critic_sums[index] / self.critic_counts[index]).tolist()
        generator = (self.generator_sums[index] / self.generator_counts[index]).tolist()
        for sums in (self.critic_sums, self.generator_sums, self.critic_counts, self.generator_counts):
            sums[index] = 0.0
        return dict(zip(CRITIC_SIGNALS + GENERATOR_SIGNALS, critic + generator))

    def advance(self) -> list[SlotReport]:
        """Train until at least one live slot reaches a report; its report (and any other's due) comes back.

        A slot reports where its single-trial run would: every ``eval_every`` of its own steps and at
        its last step. A slot whose trial ended (completed or diverged) must be retired before the
        next ``advance``.
        """
        live = self.live_slots()
        if not live:
            return []
        if any(self.slots[index].ended for index in live):
            raise ValueError("retire the slots whose trials ended before advancing the cohort")
        self.run_steps(min(self._until_next_report(self.slots[index]) for index in live))
        reports = []
        for index in live:
            slot = self.slots[index]
            if slot.step % self.shape.eval_every and slot.step < slot.config.steps:
                continue
            steps_per_s = slot.interval_steps / (time.perf_counter() - slot.interval_started)
            trainer = self.trainer(index)
            report = trainer.evaluate(self._drain_signals(index), steps_per_s)
            slot.last_report = dict(trainer.last_report)
            slot.interval_steps, slot.interval_started = 0, time.perf_counter()
            slot.ended = report["status"] in ("completed", "diverged")
            reports.append(SlotReport(index, slot.config, report, slot.ended))
        return reports

    def reports(self) -> Iterator[SlotReport]:
        """Every slot's reports until all have ended (no refills): for a fixed set of trials."""
        while self.live_slots():
            for slot_report in self.advance():
                yield slot_report
                if slot_report.ended:
                    self.retire(slot_report.slot)
