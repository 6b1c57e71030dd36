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
than the cohort's maximum sits out the sub-steps it skips (weights, optimizer moments and
normalisation statistics untouched, and no random draw). A slot converts to a ``Trainer`` and
back, so its checkpoints, samples and evaluation are the single trainer's own.
"""

from __future__ import annotations

import math
import time
from functools import cached_property, partial
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import Tensor

from trainables.cohort.slot_optimizers import slot_view
from trainables.cohort.slots import SHAPE_KEYS, Slot, SlotReport, cohort_shape, stream_of_new_trainer
from trainables.cohort.stacked_net import SlotGroup, StackedNet, SubStep, slot_grad_norms
from trainables.core.config import TrainConfig, resolve_device
from trainables.core.cuda_graph import RepeatedStep
from trainables.core.losses import (
    GRADIENT_PENALTY,
    LOSSES,
    WEIGHT_CLIPPING,
    build_loss,
    interpolation_weights,
    slope_penalty,
)
from trainables.core.precision import training_autocast
from trainables.core.report_loop import ReportFiles
from trainables.core.schedule import ends_run, reports_at, steps_to_report
from trainables.core.trainer import CRITIC_SIGNALS, GENERATOR_SIGNALS, Trainer
from trainables.data.datasets import load_data, resolve_files
from trainables.data.loading import to_device
from trainables.data.records import DataBundle
from trainables.errors import ConfigError
from trainables.quality.scoring import build_quality


class Cohort:
    """Up to ``slots`` trials whose configs share ``shape``'s ``cohort_shape``, trained in one step.

    ``fill`` puts a trial into a free slot (fresh from its seed, or continued from a checkpoint);
    ``advance`` trains until at least one slot reaches a report and returns those reports;
    ``retire`` takes a trial out (one that ended, or one a pruner stopped), and its slot can be
    filled again while the others go on.
    """

    def __init__(self, shape: TrainConfig, slots: int, data: DataBundle | None = None):
        shape = resolve_files(shape)
        self.shape = shape
        self.shape_key = cohort_shape(shape)
        self.capacity = slots
        self.device = resolve_device(shape.device)
        self.data = to_device(data or load_data(shape), self.device)
        template = Trainer(shape, self.data)
        self.generator = StackedNet(template.generator, slots, shape.conditional)
        self.discriminator = StackedNet(template.discriminator, slots, shape.conditional)
        self._autocast = partial(training_autocast, self.device, shape.mixed_precision)
        self.slots: list[Slot | None] = [None] * slots
        self.gp_weight = torch.zeros(slots, device=self.device)
        self.clip = torch.full((slots,), math.inf, device=self.device)
        self.critic_sums = torch.zeros(slots, len(CRITIC_SIGNALS), device=self.device)
        self.generator_sums = torch.zeros(slots, len(GENERATOR_SIGNALS), device=self.device)
        self.critic_counts = torch.zeros(slots, device=self.device)
        self.generator_counts = torch.zeros(slots, device=self.device)
        self._repeat_step = RepeatedStep(self._train_step, self.device, template.use_graph, self._slot_streams)
        self._plan: tuple[list[SubStep], list[SubStep]] | None = None

    @cached_property
    def quality(self):
        """One evaluator for every slot."""
        return build_quality(self.data, self.device, evaluator=self.shape.evaluator)

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
        rng = stream_of_new_trainer(self.device)
        self.generator.load_slot(index, trainer.generator, trainer.opt_g)
        self.discriminator.load_slot(index, trainer.discriminator, trainer.opt_d)
        strength = float(getattr(config, regulariser.key) or 0.0) if regulariser else 0.0
        self.gp_weight[index] = strength if regulariser is GRADIENT_PENALTY else 0.0
        self.clip[index] = strength if regulariser is WEIGHT_CLIPPING and strength else math.inf
        for sums in (self.critic_sums, self.generator_sums, self.critic_counts, self.generator_counts):
            sums[index] = 0.0
        self.slots[index] = Slot(config, build_loss(config), rng, trainer.step, dict(trainer.last_report),
                                  float(self.gp_weight[index]), bool(self.clip[index] < math.inf))
        self._changed()

    def retire(self, index: int) -> None:
        """Take slot ``index``'s trial out; the others go on, and the slot may be filled again."""
        self.slots[index] = None
        self._changed()

    def _changed(self) -> None:
        """The slots changed: the sub-step masks are planned again, and the CUDA graph captured again."""
        self._repeat_step.recapture()
        self._plan = None

    def _slot_streams(self) -> list[torch.Generator]:
        return [slot.rng for slot in self.slots if slot is not None]

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
    def _sub_steps(self, sub_steps: str) -> list[SubStep]:
        """For each critic (or generator) sub-step of the cohort's step, the slots taking part in it."""
        counts = [getattr(slot.config, sub_steps) if slot else 0 for slot in self.slots]
        plan = []
        for sub_step in range(max(counts, default=0)):
            slots = [index for index, count in enumerate(counts) if count > sub_step]
            active = torch.tensor([count > sub_step for count in counts], device=self.device)
            rows = torch.tensor(slots, device=self.device)
            penalised = [place for place, index in enumerate(slots) if self.slots[index].penalty_weight > 0]
            plan.append(SubStep(slots, active, rows, len(slots) == self.capacity, penalised,
                                torch.tensor(penalised, dtype=torch.long, device=self.device)))
        return plan

    def _draw(self, sub_step: SubStep, draw: Callable[[Slot], Tensor]) -> Tensor:
        """One draw per slot taking part, from its own stream, stacked."""
        return torch.stack([draw(self.slots[index]) for index in sub_step.slots])

    def _per_slot(self, sub_step: SubStep, value: Callable[[int, Slot], Tensor]) -> Tensor:
        """``value(row, slot)`` for each slot taking part (``row``: its place among them), stacked."""
        return torch.stack([value(row, self.slots[index]) for row, index in enumerate(sub_step.slots)])

    def _noise(self, slot: Slot) -> Tensor:
        return torch.randn(self.shape.batch_size, self.shape.latent_dim, device=self.device, generator=slot.rng)

    def _indices(self, size: int) -> Callable[[Slot], Tensor]:
        return lambda slot: torch.randint(0, size, (self.shape.batch_size,), device=self.device, generator=slot.rng)

    def _critic_step(self, sub_step: SubStep) -> None:
        with self.generator.restricted(sub_step) as generate, self.discriminator.restricted(sub_step) as criticise:
            real_index = self._draw(sub_step, self._indices(self.data.train_x.shape[0]))
            real, labels = self.data.train_at(real_index)
            labels = labels if self.shape.conditional else None
            z = self._draw(sub_step, self._noise)
            with self._autocast():
                with torch.no_grad():
                    fake = generate(z, labels)
                real_scores = criticise(real, labels)
                fake_scores = criticise(fake, labels)
                losses = self._per_slot(sub_step, lambda row, slot: slot.loss.discriminator(real_scores[row],
                                                                                           fake_scores[row]))
                penalties = self._penalties(sub_step, criticise, real, fake, labels)
            weights = self.gp_weight[sub_step.rows]
            grads = list(torch.autograd.grad((losses + weights * penalties).sum(),
                                             list(self.discriminator.params.values())))
        norms = slot_grad_norms(grads)[sub_step.rows]
        self.discriminator.optimizers.step(grads, sub_step.active, sub_step.everyone)
        self._clip(sub_step.active)
        wasserstein = real_scores.mean(1) - fake_scores.mean(1)
        signals = torch.stack([losses, wasserstein, penalties, norms], dim=1).detach()
        self.critic_sums.index_add_(0, sub_step.rows, signals)
        self.critic_counts += sub_step.active

    def _penalties(self, sub_step: SubStep, criticise: SlotGroup, real: Tensor, fake: Tensor,
                   labels: Tensor | None) -> Tensor:
        """Each penalised slot's gradient penalty, with its own interpolation weights; zero elsewhere.

        Only the penalised slots' critics run on the interpolates, as only theirs would in a single
        trainer: the computation is theirs alone, and a spectrally normalised critic's power
        iteration advances on every forward pass it makes.
        """
        penalties = torch.zeros(len(sub_step.slots), device=self.device)
        if not sub_step.penalised:
            return penalties
        places = sub_step.penalised_places
        mix = torch.stack([interpolation_weights(real[place], self.slots[sub_step.slots[place]].rng)
                           for place in sub_step.penalised])
        interpolates = (mix * real[places] + (1.0 - mix) * fake[places].detach()).requires_grad_(True)
        with criticise.subset(places) as penalised_critic:
            scores = penalised_critic(interpolates, None if labels is None else labels[places])
            (grads,) = torch.autograd.grad(scores.sum(), interpolates, create_graph=True)
        return penalties.index_put((places,), torch.stack([slope_penalty(slot_grads) for slot_grads in grads]))

    @torch.no_grad()
    def _clip(self, active: Tensor) -> None:
        """WGAN's weight clipping, at each clipped slot's own bound."""
        if not any(slot is not None and slot.clipped for slot in self.slots):
            return
        for param in self.discriminator.params.values():
            bound = slot_view(self.clip, param)
            clipped = torch.maximum(torch.minimum(param, bound), -bound)
            param.copy_(torch.where(slot_view(active, param), clipped, param))

    def _generator_step(self, sub_step: SubStep) -> None:
        with self.generator.restricted(sub_step) as generate, self.discriminator.restricted(sub_step) as criticise:
            labels = None
            if self.shape.conditional:
                labels = self.data.train_y[self._draw(sub_step, self._indices(self.data.train_y.shape[0]))]
            z = self._draw(sub_step, self._noise)
            with self._autocast():
                scores = criticise(generate(z, labels), labels)
                losses = self._per_slot(sub_step, lambda row, slot: slot.loss.generator(scores[row]))
            grads = list(torch.autograd.grad(losses.sum(), list(self.generator.params.values())))
        norms = slot_grad_norms(grads)[sub_step.rows]
        self.generator.optimizers.step(grads, sub_step.active, sub_step.everyone)
        self.generator_sums.index_add_(0, sub_step.rows, torch.stack([losses, norms], dim=1).detach())
        self.generator_counts += sub_step.active

    def _train_step(self) -> None:
        if self._plan is None:
            self._plan = self._sub_steps("d_steps"), self._sub_steps("g_steps")
        critic_sub_steps, generator_sub_steps = self._plan
        for sub_step in critic_sub_steps:
            self._critic_step(sub_step)
        for sub_step in generator_sub_steps:
            self._generator_step(sub_step)

    def run_steps(self, count: int) -> None:
        """Train every live slot ``count`` steps; on CUDA, replays of one captured cohort step."""
        self._repeat_step(count)
        for slot in self.slots:
            if slot is not None:
                slot.step += count
                slot.interval_steps += count

    # -------------------------------------------------------------------------- reports
    def _until_next_report(self, slot: Slot) -> int:
        return steps_to_report(slot.step, self.shape.eval_every, slot.config.steps)

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
            if not reports_at(slot.step, self.shape.eval_every, slot.config.steps):
                continue
            steps_per_s = slot.interval_steps / (time.perf_counter() - slot.interval_started)
            trainer = self.trainer(index)
            report = trainer.evaluate(self._drain_signals(index), steps_per_s)
            slot.last_report = dict(trainer.last_report)
            slot.interval_steps, slot.interval_started = 0, time.perf_counter()
            slot.ended = ends_run(report)
            reports.append(SlotReport(index, slot.config, report, slot.ended))
        return reports

    def reports(self) -> Iterator[SlotReport]:
        """Every slot's reports until all have ended (no refills): for a fixed set of trials."""
        while self.live_slots():
            for slot_report in self.advance():
                yield slot_report
                if slot_report.ended:
                    self.retire(slot_report.slot)
