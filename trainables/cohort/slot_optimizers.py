"""Adam and RMSprop over stacked weights: one optimizer per cohort slot, updated in one pass.

A cohort holds each net's weights as tensors with a leading slot dimension. Every slot keeps its
own optimizer (Adam or RMSprop), learning rate, betas, step count and moments. An update is
masked per slot: a slot outside the mask keeps its weights *and* its state exactly (a zero
learning rate would still move Adam's moments). The arithmetic is torch.optim's own
single-tensor algorithm, so a slot follows the single-trial trainer's optimizer within float
rounding, and its state converts to and from a ``torch.optim`` state dict.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

EPS = 1e-8  # torch.optim's default for both
RMSPROP_ALPHA = 0.99  # torch.optim.RMSprop's default smoothing of the squared gradient


def slot_view(values: Tensor, like: Tensor) -> Tensor:
    """One value per slot, shaped to broadcast over a stacked tensor ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


class SlotOptimizers:
    """The optimizers of ``slots`` slots over the stacked ``params`` (each ``[slots, ...]``)."""

    def __init__(self, params: Sequence[Tensor], slots: int):
        device = params[0].device
        self.params = list(params)
        self.step_count = torch.zeros(slots, dtype=torch.float64, device=device)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.is_adam = torch.ones(slots, dtype=torch.bool, device=device)
        self.slot_is_adam = [True] * slots  # the same, readable without a device sync
        self.lr = torch.zeros(slots, dtype=torch.float64, device=device)
        self.beta1 = torch.zeros(slots, dtype=torch.float64, device=device)
        self.beta2 = torch.zeros(slots, dtype=torch.float64, device=device)

    # ------------------------------------------------------------------------- per slot
    def load_slot(self, slot: int, optimizer: torch.optim.Optimizer) -> None:
        """Take over ``optimizer`` (built over one slot's parameters in the same order) for ``slot``."""
        group = optimizer.param_groups[0]
        adam = isinstance(optimizer, torch.optim.Adam)
        self.is_adam[slot] = self.slot_is_adam[slot] = adam
        self.lr[slot] = group["lr"]
        self.beta1[slot], self.beta2[slot] = group["betas"] if adam else (0.0, group["alpha"])
        state = optimizer.state_dict()["state"]
        self.step_count[slot] = float(state[0]["step"]) if state else 0.0
        second_moment = "exp_avg_sq" if adam else "square_avg"
        with torch.no_grad():
            for index, (exp_avg, exp_avg_sq) in enumerate(zip(self.exp_avg, self.exp_avg_sq)):
                saved = state.get(index, {})
                exp_avg[slot] = saved["exp_avg"] if "exp_avg" in saved else 0.0
                exp_avg_sq[slot] = saved[second_moment] if second_moment in saved else 0.0

    def slot_state(self, slot: int, optimizer: torch.optim.Optimizer) -> None:
        """Write ``slot``'s state into ``optimizer``, a fresh one of the same kind over one slot's parameters."""
        adam = isinstance(optimizer, torch.optim.Adam)
        saved = optimizer.state_dict()
        if self.step_count[slot] > 0:
            step = torch.tensor(float(self.step_count[slot]))
            moments = {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq} if adam else {"square_avg": self.exp_avg_sq}
            saved["state"] = {
                index: {"step": step.clone(), **{name: stacked[index][slot].detach().clone()
                                                 for name, stacked in moments.items()}}
                for index in range(len(self.params))
            }
        optimizer.load_state_dict(saved)

    # ------------------------------------------------------------------------- the update
    @torch.no_grad()
    def step(self, grads: Sequence[Tensor], mask: Tensor, everyone: bool) -> None:
        """One update of every slot in ``mask`` (bool, one per slot) from its ``grads``;
        ``everyone``: the mask holds every slot, so nothing needs keeping."""
        steps = torch.where(mask, self.step_count + 1, self.step_count)
        self.step_count.copy_(steps)
        dtype = self.params[0].dtype
        adam_slots, rmsprop_slots = any(self.slot_is_adam), not all(self.slot_is_adam)
        # Per-slot factors, computed once per update in float64 (as torch.optim does in Python) and
        # then cast to the weights' precision.
        safe_steps = steps.clamp(min=1)
        step_size = (self.lr / (1 - self.beta1**safe_steps)).to(dtype)
        denominator_scale = (1 - self.beta2**safe_steps).sqrt().to(dtype)
        lr, beta1_weight, beta2 = self.lr.to(dtype), (1 - self.beta1).to(dtype), self.beta2.to(dtype)
        for param, grad, exp_avg, exp_avg_sq in zip(self.params, grads, self.exp_avg, self.exp_avg_sq):
            new_exp_avg_sq = exp_avg_sq * slot_view(beta2, param) + (1 - slot_view(beta2, param)) * grad * grad
            if adam_slots:
                new_exp_avg = exp_avg.lerp(grad, slot_view(beta1_weight, param))
                adam_update = new_exp_avg / (new_exp_avg_sq.sqrt() / slot_view(denominator_scale, param) + EPS)
                update = adam_update * slot_view(step_size, param)
            if rmsprop_slots:
                rmsprop_update = grad / (new_exp_avg_sq.sqrt() + EPS) * slot_view(lr, param)
                update = torch.where(slot_view(self.is_adam, param), update, rmsprop_update) if adam_slots else rmsprop_update
            if everyone:
                param.sub_(update)
                exp_avg_sq.copy_(new_exp_avg_sq)
                if adam_slots:
                    exp_avg.copy_(new_exp_avg)
                continue
            keep = slot_view(mask, param)
            param.copy_(torch.where(keep, param - update, param))
            exp_avg_sq.copy_(torch.where(keep, new_exp_avg_sq, exp_avg_sq))
            if adam_slots:
                exp_avg.copy_(torch.where(keep & slot_view(self.is_adam, param), new_exp_avg, exp_avg))
