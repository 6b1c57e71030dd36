"""One net of a cohort: its weights and buffers stacked along a slot dimension, run for all slots at once.

``torch.func.vmap`` over ``functional_call`` applies the net slot by slot to the stacked tensors,
so each layer is one batched kernel for every slot (a convolution over stacked weights becomes one
grouped convolution). Batch norm's running statistics, stacked too, are updated per slot by the
forward pass. A ``SubStep`` names the slots taking part in one critic or generator update; the
others are left out of the computation altogether.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import ContextManager, Iterator

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from trainables.cohort.slot_optimizers import SlotOptimizers


@dataclass(frozen=True)
class SubStep:
    """The slots taking part in one critic or generator sub-step: by index, as a mask over all slots,
    and as row indices (both made when the slots change, since a CUDA graph cannot copy them in);
    and which of them have a gradient penalty, by their place among the taking part."""

    slots: list[int]
    active: Tensor
    rows: Tensor
    everyone: bool
    penalised: list[int]
    penalised_places: Tensor


def slot_grad_norms(grads: list[Tensor]) -> Tensor:
    """Each slot's total gradient 2-norm over all of a net's parameters."""
    return torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()


class SlotwiseNet:
    """A net's structure applied to stacked weights, buffers, inputs and labels, slot by slot.

    Several slots go through ``torch.func.vmap``; a single slot is called directly on its own
    tensors (views of the stacked ones), since vmap's cost per operation buys nothing for one.
    """

    def __init__(self, module: nn.Module, conditional: bool):
        self.structure = copy.deepcopy(module).to("meta")
        self.conditional = conditional
        self.batched = vmap(self.one_slot, in_dims=(0, 0, 0, 0 if conditional else None))

    def one_slot(self, params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Tensor,
                 labels: Tensor | None) -> Tensor:
        return functional_call(self.structure, (params, buffers), (inputs, labels))

    def __call__(self, params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Tensor,
                 labels: Tensor | None) -> Tensor:
        if inputs.shape[0] > 1:
            return self.batched(params, buffers, inputs, labels)
        def first(stacked: dict[str, Tensor]) -> dict[str, Tensor]:
            return {name: value[0] for name, value in stacked.items()}

        labels = labels[0] if self.conditional else None
        return self.one_slot(first(params), first(buffers), inputs[0], labels).unsqueeze(0)


class SlotGroup:
    """Some slots of a stacked net: their weights and buffers, and the net as a function of
    (inputs, labels) stacked for them alone."""

    def __init__(self, forward: SlotwiseNet, params: dict[str, Tensor], buffers: dict[str, Tensor]):
        self.forward, self.params, self.buffers = forward, params, buffers

    def __call__(self, inputs: Tensor, labels: Tensor | None) -> Tensor:
        return self.forward(self.params, self.buffers, inputs, labels)

    @contextmanager
    def subset(self, rows: Tensor) -> Iterator["SlotGroup"]:
        """The slots at ``rows`` of this group. Their weights are gathered (gradients flow back to
        this group's); their buffers are gathered when entering, updated by the forward passes, and
        written back on leaving. In between, only this subset's forward passes may run: the others'
        would update buffers that the write-back then overwrites."""
        buffers = {name: value[rows] for name, value in self.buffers.items()}
        yield SlotGroup(self.forward, {name: value[rows] for name, value in self.params.items()}, buffers)
        with torch.no_grad():
            for name, value in buffers.items():
                self.buffers[name].index_copy_(0, rows, value)


class StackedNet:
    """One net's weights and buffers for every slot, the batched forward, and the slots' optimizers."""

    def __init__(self, module: nn.Module, slots: int, conditional: bool):
        self.params, self.buffers = stack_module_state([module] * slots)
        self.forward = SlotwiseNet(module, conditional)
        self.optimizers = SlotOptimizers(list(self.params.values()), slots)

    def restricted(self, sub_step: SubStep) -> ContextManager[SlotGroup]:
        """The net of the slots taking part in ``sub_step``. The others' weights get zero gradients
        and their batch-norm statistics are untouched."""
        every_slot = SlotGroup(self.forward, self.params, self.buffers)
        return nullcontext(every_slot) if sub_step.everyone else every_slot.subset(sub_step.rows)

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
