"""A training step run many times: eagerly, or on CUDA as replays of one captured CUDA graph.

Shared by the single-trial and the cohort trainer. Small GAN nets are launch-bound on a GPU:
replaying a captured step costs one launch instead of hundreds. CUDA graphs need the captured
code warmed up on a side stream first; those warm-up steps are real training steps, and count
among the steps asked for.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

GRAPH_WARMUP_STEPS = 3


def capture_step(train_step: Callable[[], None], device: torch.device,
                 generators: Sequence[torch.Generator] = ()) -> torch.cuda.CUDAGraph:
    """Run ``GRAPH_WARMUP_STEPS`` eager steps on a side stream, then record one step.

    ``generators`` are private RNGs the step draws from: the graph advances their state on each
    replay, as it does the default generator's.
    """
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(GRAPH_WARMUP_STEPS):
            train_step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    for generator in generators:
        graph.register_generator_state(generator)
    with torch.cuda.graph(graph):
        train_step()
    return graph


class RepeatedStep:
    """``train_step`` run ``count`` times at a call: eagerly, or, with ``use_graph``, as graph replays.

    The graph is captured on the first call long enough to pay for its warm-up, and captured again
    after ``recapture()`` (the step's tensors or ``generators()`` changed).
    """

    def __init__(self, train_step: Callable[[], None], device: torch.device, use_graph: bool,
                 generators: Callable[[], Sequence[torch.Generator]] = tuple):
        self.train_step = train_step
        self.device = device
        self.use_graph = use_graph
        self.generators = generators
        self.graph: torch.cuda.CUDAGraph | None = None

    def recapture(self) -> None:
        self.graph = None

    def __call__(self, count: int) -> None:
        done = 0
        if self.use_graph and self.graph is None and count > GRAPH_WARMUP_STEPS:
            self.graph = capture_step(self.train_step, self.device, self.generators())
            done = GRAPH_WARMUP_STEPS
        run_one = self.graph.replay if self.graph is not None else self.train_step
        for _ in range(count - done):
            run_one()
