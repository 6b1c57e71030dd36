"""One training step captured as a CUDA graph, shared by the single-trial and the cohort trainer.

Small GAN nets are launch-bound on a GPU: replaying a captured step costs one launch instead of
hundreds. CUDA graphs need the captured code warmed up on a side stream first; those warm-up
steps are real training steps, and the caller counts them.
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
