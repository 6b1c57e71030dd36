"""Search throughput: per-trial start-up overhead and trials per minute, with and without actor reuse.

The same fixed grid25 search (FIFO, random sampler, tiny trials) runs twice on an embedded Ray:
once with ``reuse_actors`` (what ``gantune search`` does) and once starting a fresh trial process
per trial. "Start-to-first-report" is the driver-side time from Tune's trial start to the first
report; Tune starts a fresh actor's clock only once its process is up, so the process start-up
itself shows in the wall time, and the last line divides that difference by the trial count.

    python bench/search.py --trials 12 --steps 100
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from ray import tune

from pipelines.search.folder import SearchFolder
from pipelines.search.runner import SearchRun, run_search
from search_spaces.preset import preset_from_dict


class StartupTimer(tune.Callback):
    """Records each trial's start-to-first-report time and the search's wall time."""

    def __init__(self):
        self.started: dict[str, float] = {}
        self.first_report: dict[str, float] = {}
        self.begin = self.end = None

    def on_step_begin(self, iteration, trials, **info):
        self.begin = self.begin or time.perf_counter()

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started[trial.trial_id] = time.perf_counter()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.first_report.setdefault(trial.trial_id, time.perf_counter() - self.started[trial.trial_id])

    def on_experiment_end(self, trials, **info):
        self.end = time.perf_counter()


def bench_preset(trials: int, steps: int, cpus: float):
    return preset_from_dict({
        "dataset": "grid25",
        "searcher": {"name": "random", "seed": 0},
        "scheduler": "fifo",
        "budget": {"num_samples": trials, "max_steps": steps},
        "resources": {"cpus_per_trial": cpus},
        "params": {"loss": ["gan", "hinge", "lsgan"], "width": 32, "latent_dim": 8, "batch_size": 64,
                   "eval_every": max(1, steps // 2), "eval_samples": 1000, "conditional": False},
    }, name="bench-grid25")


def measure(reuse: bool, args) -> dict[str, float]:
    timer = StartupTimer()
    with tempfile.TemporaryDirectory(prefix="gantune-bench-") as storage:
        run = SearchRun(
            preset=bench_preset(args.trials, args.steps, args.cpus_per_trial),
            folder=SearchFolder(storage, f"reuse-{reuse}"),
            study_url=f"sqlite:///{storage}/optuna.db",
            reuse_actors=reuse,
            extra_callbacks=(timer,),
        )
        run_search(run)
    overheads = list(timer.first_report.values())
    wall = timer.end - timer.begin
    return {
        "median start-to-first-report (s)": statistics.median(overheads),
        "max start-to-first-report (s)": max(overheads),
        "search wall time (s)": wall,
        "trials per minute": len(overheads) / wall * 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--cpus-per-trial", type=float, default=0.5)
    args = parser.parse_args()
    fresh = measure(False, args)
    reused = measure(True, args)
    print(f"\ngrid25, {args.trials} trials x {args.steps} steps, {args.cpus_per_trial} CPU each")
    print(f"{'':34}{'fresh actors':>14}{'reused actors':>15}{'ratio':>8}")
    for key in fresh:
        print(f"{key:34}{fresh[key]:14.2f}{reused[key]:15.2f}{fresh[key] / reused[key]:8.2f}")
    saved = (fresh["search wall time (s)"] - reused["search wall time (s)"]) / args.trials
    print(f"actor start-up saved per trial by reuse: {saved:.2f} s")


if __name__ == "__main__":
    main()
