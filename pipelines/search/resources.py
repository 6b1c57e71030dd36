"""What each trial asks of the cluster, checked against what its nodes have before a trial starts.

Ray queues a trial whose request no node can meet and waits for such a node forever, printing
only resource warnings. A search checks first: on an embedded Ray (this machine), a GPU request
that came from the preset falls back to the CPU with one line, so the shipped image presets run
anywhere; a request the user typed, or one no node of a cluster can meet, is a usage error.
While the search runs, ``ResourceWait`` says when trials wait for resources that exist but are
busy (other jobs on the cluster, a node scaling up) and how long they waited.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from ray import tune

from search_spaces.preset import with_overrides
from search_spaces.preset_types import SearchPreset
from trainables.errors import UsageError


@dataclass(frozen=True)
class NodeCapacity:
    cpus: float
    gpus: float

    def fits(self, cpus: float, gpus: float) -> bool:
        return cpus <= self.cpus and gpus <= self.gpus

    def __str__(self) -> str:
        return f"{self.cpus:g} CPUs and {self.gpus:g} GPUs"


def this_machine() -> NodeCapacity:
    """What an embedded Ray would offer: the CPUs this process may use and the CUDA devices it sees."""
    import torch

    return NodeCapacity(float(len(os.sched_getaffinity(0))), float(torch.cuda.device_count()))


def live_nodes() -> list[NodeCapacity]:
    """The total CPUs and GPUs of every live node of the Ray cluster this process is connected to."""
    import ray

    return [
        NodeCapacity(node["Resources"].get("CPU", 0.0), node["Resources"].get("GPU", 0.0))
        for node in ray.nodes()
        if node.get("Alive")
    ]


def fit_to_nodes(preset: SearchPreset, nodes: list[NodeCapacity], embedded: bool, gpus_typed: bool) -> SearchPreset:
    """The preset with a request some node can meet; raises UsageError when there is none.

    ``embedded``: Ray runs on this machine only; ``gpus_typed``: ``--gpus-per-trial`` was given.
    """
    cpus, gpus = preset.resources.cpus_per_trial, preset.resources.gpus_per_trial
    has_gpu = any(node.gpus > 0 for node in nodes)
    if gpus > 0 and not has_gpu and embedded and not gpus_typed:
        print(f"no GPU on this machine: the preset's gpus_per_trial {gpus:g} becomes 0, and trials train on the CPU",
              flush=True)
        return with_overrides(preset, gpus_per_trial=0.0)
    if any(node.fits(cpus, gpus) for node in nodes):
        return preset
    where = "this machine has" if embedded else "the largest node of the cluster has"
    largest = max(nodes, key=lambda node: (node.gpus, node.cpus), default=NodeCapacity(0, 0))
    source = "--gpus-per-trial" if gpus_typed and gpus > largest.gpus else "--cpus-per-trial / --gpus-per-trial"
    raise UsageError(
        f"each trial asks for {cpus:g} CPUs and {gpus:g} GPUs, but {where} {largest}; "
        f"lower {source} (or the preset's resources) so a trial fits on one node"
    )


WAIT_NOTICE_S = 10.0


class ResourceWait(tune.Callback):
    """Says when trials wait for resources, and how long the wait took once a trial starts."""

    def __init__(self, preset: SearchPreset):
        self.request = f"{preset.resources.cpus_per_trial:g} CPUs and {preset.resources.gpus_per_trial:g} GPUs"
        self._since = time.monotonic()
        self._announced = False

    def on_step_end(self, iteration, trials, **info) -> None:
        """Announce a wait once nothing has run for a while and trials are pending."""
        if any(trial.status == "RUNNING" for trial in trials):
            self._since = time.monotonic()
            return
        pending = sum(trial.status == "PENDING" for trial in trials)
        if pending and not self._announced and time.monotonic() - self._since >= WAIT_NOTICE_S:
            print(f"waiting for resources: {pending} trials pending, each asks {self.request}", flush=True)
            self._announced = True

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        if self._announced:
            print(f"trial {trial.trial_id} started after waiting {time.monotonic() - self._since:.0f} s for resources",
                  flush=True)
            self._announced = False
        self._since = time.monotonic()
