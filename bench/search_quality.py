"""Search quality: the shipped search (TPE + ASHA) beside Lucic et al. 2018's baseline (random
search, no early stopping), on the same wall clock.

For each task and seed the two searches run side by side, each in its own process with its own
embedded Ray, the same wall-clock budget, concurrency and CPUs per trial, so whatever else loads
the machine slows both alike. Their trial-seconds are not made equal: each search counts its own
(a search that leaves a lane idle spends fewer), and a callback adds up every
report's ``time_this_iter_s`` (a report's share of a trial's running time, evaluation included)
in the order the driver receives them. Tasks: ``grid25`` (the shipped preset) and ``mnist`` (the
shipped MNIST preset with the ``mlp`` architecture, on CPUs). It prints, per task:

- the best value reached against trial-seconds, for both searches (median over seeds);
- the trial-seconds each needs to reach the baseline's final best, seed by seed;
- the best trial's ``modes_covered``/``high_quality`` (2-D) or ``fd``/``precision``/``recall``;
- over the baseline's trials that ran to the end, the rank correlation between the metric at
  each evaluation step and the trial's final best: how early a rung predicts the final ranking,
  the figure the presets' ASHA grace periods are set from.

    python bench/search_quality.py --tasks grid25 mnist --seeds 0 1 2 --budget-s 600   # one core per search
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import pandas as pd
from ray import tune

from pipelines.search.folder import SearchFolder
from pipelines.search.runner import SearchRun, run_search
from search_spaces.preset import load_preset, preset_from_dict
from trainables.quality.objectives import best_of, is_better

SHIPPED, BASELINE = "tpe+asha", "random+fifo"
METHODS = {
    BASELINE: {"searcher": "random", "scheduler": "fifo"},
    SHIPPED: {},  # the preset as shipped
}
DIAGNOSTICS = {"grid25": ("modes_covered", "high_quality"), "mnist": ("fd", "precision", "recall")}
BUDGET_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0)


@dataclass
class Report:
    trial_seconds: float  # cumulative over the whole search when this report arrived
    trial_id: str
    step: int
    value: float
    diverged: bool
    metrics: dict


@dataclass
class Recorder(tune.Callback):
    """Every report of a search, stamped with the search's cumulative trial-seconds."""

    metric: str
    reports: list[Report] = field(default_factory=list)
    spent: float = 0.0

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.spent += float(result.get("time_this_iter_s", 0.0))
        self.reports.append(Report(self.spent, trial.trial_id, int(result["step"]), float(result[self.metric]),
                                   bool(result.get("diverged")), dict(result)))


def task_preset(task: str, method: str, seed: int, args):
    """The shipped preset of ``task`` with the method's searcher and scheduler and the bench's budget."""
    raw = load_preset(task).to_dict()
    raw.pop("mode")
    raw["searcher"] = {"name": METHODS[method].get("searcher", raw["searcher"]["name"]), "seed": seed}
    if "scheduler" in METHODS[method]:
        raw["scheduler"] = {"name": METHODS[method]["scheduler"]}
    raw["budget"] = {**raw["budget"], "num_samples": 10_000, "time_budget": args.budget_s,
                     "max_concurrent": args.concurrent}
    raw["resources"] = {"cpus_per_trial": args.cpus_per_trial, "gpus_per_trial": 0}
    if task == "mnist":
        raw["params"] = {**raw["params"], "arch": "mlp", "eval_samples": args.mnist_eval_samples}
    return preset_from_dict(raw, name=f"{task}-{method}-{seed}")


def run_one(task: str, method: str, seed: int, args) -> list[Report]:
    preset = task_preset(task, method, seed, args)
    recorder = Recorder(preset.metric)
    with tempfile.TemporaryDirectory(prefix="gantune-bench-") as storage:
        run_search(SearchRun(preset=preset, folder=SearchFolder(storage, preset.name),
                             study_url=f"sqlite:///{storage}/optuna.db", extra_callbacks=(recorder,)))
    return recorder.reports


def best_curve(reports: list[Report], mode: str) -> list[tuple[float, float, Report]]:
    """(trial-seconds, best value so far, the report that holds it) after every finite report."""
    curve, best = [], None
    for report in reports:
        finite = not report.diverged and math.isfinite(report.value)
        if finite and is_better(report.value, None if best is None else best.value, mode):
            best = report
        if best is not None:
            curve.append((report.trial_seconds, best.value, best))
    return curve


def best_at(curve, seconds: float) -> float:
    reached = [value for spent, value, _ in curve if spent <= seconds]
    return reached[-1] if reached else math.nan


def seconds_to_reach(curve, target: float, mode: str) -> float:
    """Trial-seconds until the best value is at least as good as ``target``; inf if never."""
    for spent, value, _ in curve:
        if not is_better(target, value, mode):
            return spent
    return math.inf


def rung_correlations(reports: list[Report], horizon: int, mode: str) -> list[tuple[int, int, float]]:
    """(step, trials, Spearman rho) of the metric at each ``step`` before ``horizon`` against the
    trial's best up to ``horizon``, over the trials that reached ``horizon`` without diverging."""
    frame = pd.DataFrame([(r.trial_id, r.step, r.value, r.diverged) for r in reports],
                         columns=["trial", "step", "value", "diverged"])
    diverged = set(frame.loc[frame.diverged, "trial"])
    reached = set(frame.loc[frame.step >= horizon, "trial"]) - diverged
    table = frame[frame.trial.isin(reached) & (frame.step <= horizon)].pivot_table(index="trial", columns="step",
                                                                                 values="value")
    if table.empty:
        return []
    final = table.apply(lambda row: best_of(row.dropna(), mode), axis=1)
    return [(int(step), int(table[step].notna().sum()), table[step].corr(final, method="spearman"))
            for step in table.columns if step < horizon and table[step].notna().sum() >= 3]


def print_curves(metric: str, curves: dict, reference: float) -> None:
    print(f"best {metric} after trial-seconds (median over seeds)")
    print(f"  {'':14}" + "".join(f"{f'{int(f * reference)} s':>12}" for f in BUDGET_FRACTIONS))
    for method, per_seed in curves.items():
        cells = "".join(f"{statistics.median(best_at(c, f * reference) for c in per_seed.values()):12.4g}"
                        for f in BUDGET_FRACTIONS)
        print(f"  {method:14}{cells}")


def print_compute_to_reach_baseline(curves: dict, spent: dict, mode: str, seeds: list[int]) -> None:
    print("trial-seconds to reach the baseline's final best, by seed")
    ratios = []
    for seed in seeds:
        baseline = curves[BASELINE][seed]
        target = baseline[-1][1] if baseline else math.nan
        total = spent[BASELINE][seed]
        ours = seconds_to_reach(curves[SHIPPED][seed], target, mode)
        ratios.append(ours / total if total else math.inf)
        print(f"  seed {seed}: target {target:.4g}; {SHIPPED} {ours:.0f} s, {BASELINE} "
              f"{seconds_to_reach(baseline, target, mode):.0f} s of its {total:.0f} s; "
              f"{SHIPPED} / baseline's compute = {ratios[-1]:.2f}")
    print(f"  median {SHIPPED} / baseline's compute: {statistics.median(ratios):.2f}")


def print_best_trials(task: str, metric: str, curves: dict) -> None:
    print("best trial of each search")
    for method, per_seed in curves.items():
        for seed, curve in per_seed.items():
            if not curve:
                print(f"  {method:14} seed {seed}: no finite report")
                continue
            best = curve[-1][2]
            shown = ", ".join(f"{key} {best.metrics.get(key, math.nan):.4g}" for key in DIAGNOSTICS[task])
            loss = best.metrics.get("config", {}).get("loss", "?")
            print(f"  {method:14} seed {seed}: {metric} {best.value:.4g} at step {best.step} (loss {loss}); {shown}")


def print_rung_correlations(metric: str, reports: list[Report], horizon: int, mode: str, whose: str) -> None:
    rows = rung_correlations(reports, horizon, mode)
    print(f"rank correlation of {metric} at a step with the trial's best up to step {horizon}, over {whose} "
          f"that reached it: " + ("none did" if not rows else ""))
    for step, count, rho in rows:
        print(f"  step {step:6d}: Spearman {rho:+.2f} over {count} trials")


def summarise(task: str, runs: dict[str, dict[int, list[Report]]], args) -> None:
    preset = load_preset(task)
    metric, mode = preset.metric, preset.mode
    print(f"\n=== {task}: {metric} ({mode}); {args.budget_s:g} s wall x {args.concurrent} concurrent trials "
          f"(~{args.budget_s * args.concurrent:g} trial-seconds) per search; seeds {' '.join(map(str, args.seeds))}")
    curves = {m: {s: best_curve(reports, mode) for s, reports in per_seed.items()} for m, per_seed in runs.items()}
    spent = {m: {s: (reports[-1].trial_seconds if reports else 0.0) for s, reports in per_seed.items()}
             for m, per_seed in runs.items()}
    print_curves(metric, curves, max(max(per_seed.values()) for per_seed in spent.values()))
    if len(runs) == len(METHODS):
        print_compute_to_reach_baseline(curves, spent, mode, args.seeds)
    print_best_trials(task, metric, curves)
    if BASELINE in runs:
        baseline = [report for reports in runs[BASELINE].values() for report in reports]
        print_rung_correlations(metric, baseline, preset.budget.max_steps, mode, f"the {BASELINE} trials")
    if preset.scheduler.name == "asha" and preset.scheduler.grace_period:
        # ASHA's second rung: how well its first cut predicted the ranking it cuts on next.
        second_rung = int(preset.scheduler.grace_period * preset.scheduler.reduction_factor)
        pooled = [report for per_seed in runs.values() for reports in per_seed.values() for report in reports]
        print_rung_correlations(metric, pooled, min(second_rung, preset.budget.max_steps), mode, "all trials")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["grid25", "mnist"], choices=sorted(DIAGNOSTICS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget-s", type=float, default=600.0, help="wall-clock seconds per search")
    parser.add_argument("--concurrent", type=int, default=1, help="trials at once per search (one core each)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    parser.add_argument("--mnist-eval-samples", type=int, default=5000)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS),
                        help="both (the comparison), or the baseline alone for its rung correlations")
    args = parser.parse_args()
    # "spawn": each search starts its own Ray in a fresh interpreter.
    with ProcessPoolExecutor(max_workers=len(args.methods), mp_context=multiprocessing.get_context("spawn")) as pool:
        for task in args.tasks:
            runs: dict[str, dict[int, list[Report]]] = {method: {} for method in args.methods}
            for seed in args.seeds:
                side_by_side = {method: pool.submit(run_one, task, method, seed, args) for method in args.methods}
                for method, future in side_by_side.items():
                    runs[method][seed] = future.result()
            summarise(task, runs, args)


if __name__ == "__main__":
    main()
