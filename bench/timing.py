"""How the benchmarks time a loop: steps per second, and several loops timed in turns.

A lone timing on a shared machine drifts with the clock, the caches and other load; loops that
take turns over several rounds meet the same drifts, and the best round of each is compared.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

# A loop under test: runs the given number of its steps.
Loop = Callable[[int], object]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def steps_per_s(loop: Loop, device: torch.device, steps: int) -> float:
    synchronize(device)
    started = time.perf_counter()
    loop(steps)
    synchronize(device)
    return steps / (time.perf_counter() - started)


def fastest_rates(loops: dict[str, Loop], device: torch.device, warmup: int, steps: int,
                  rounds: int) -> dict[str, float]:
    """Each loop's best steps per second over ``rounds`` timed rounds that take turns, after
    ``warmup`` untimed steps of each (CUDA graph capture included)."""
    for loop in loops.values():
        loop(warmup)
    best = {name: 0.0 for name in loops}
    for _ in range(rounds):
        for name, loop in loops.items():
            best[name] = max(best[name], steps_per_s(loop, device, steps))
    return best
