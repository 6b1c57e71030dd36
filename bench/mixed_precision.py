"""Does ``mixed_precision: bf16`` train as well as fp32, and how much faster? Both side by side in one run.

One config trained from S seeds in each precision, the S seeds as the slots of one cohort, so a
precision's spread over seeds is the noise its difference is judged against. Printed per
precision: trial-steps/s, and the dataset's first objective (``fd`` on images, ``js_modes`` on
the mixtures) as mean and standard deviation over the seeds; then the difference of the means in
units of the fp32 spread. On the CPU: ``configs/grid25_wgan_gp.yaml``. With ``--device cuda``:
``configs/mnist_dcgan_gan.yaml``.

    python bench/mixed_precision.py
    python bench/mixed_precision.py --device cuda --seeds 16
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

# bench/ is the script's folder, so its sibling module imports by its file name.
from timing import steps_per_s

from trainables.cohort.cohort import Cohort
from trainables.core.config import config_from_dict, load_config
from trainables.data.datasets import DATASETS, load_dataset

CONFIGS = {"cpu": "configs/grid25_wgan_gp.yaml", "cuda": "configs/mnist_dcgan_gan.yaml"}
REPO_ROOT = Path(__file__).resolve().parents[1]


def train_seeds(config, data, seeds: int) -> tuple[float, list[float]]:
    """Trial-steps/s of ``seeds`` slots trained to ``config.steps``, and each slot's final objective."""
    metric = DATASETS[config.dataset].objectives[0]
    cohort = Cohort(config, seeds, data)
    for seed in range(seeds):
        cohort.fill(seed, config_from_dict({**config.to_dict(), "seed": seed}))
    cohort.quality  # the evaluator is built before the clock starts
    rate = seeds * steps_per_s(cohort.run_steps, cohort.device, config.steps)
    finals = [slot_report.report for slot_report in cohort.advance()]
    return rate, [report[metric] for report in finals]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=None, help="training steps per seed (default: the config's)")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()

    overrides = [f"device={args.device}", *([f"steps={args.steps}"] if args.steps else []),
                 *([f"data_root={args.data_root}"] if args.data_root else [])]
    base = load_config(REPO_ROOT / CONFIGS[args.device], overrides)
    base = config_from_dict({**base.to_dict(), "eval_every": base.steps})
    data = load_dataset(base.dataset, base.data_root)
    metric = DATASETS[base.dataset].objectives[0]
    print(f"{CONFIGS[args.device]}: {base.steps} steps, {args.seeds} seeds, device {args.device}; "
          f"{metric} at the end, mean and sd over the seeds")
    print(f"{'precision':<10} {'trial-steps/s':>13} {'vs fp32':>8} {metric + ' mean':>12} {'sd':>8}")
    results = {}
    for precision in ("fp32", "bf16"):
        config = config_from_dict({**base.to_dict(), "mixed_precision": precision})
        rate, values = train_seeds(config, data, args.seeds)
        results[precision] = rate, values
        print(f"{precision:<10} {rate:>13.1f} {rate / results['fp32'][0]:>7.2f}x "
              f"{statistics.mean(values):>12.4f} {statistics.stdev(values):>8.4f}", flush=True)
    fp32, bf16 = results["fp32"][1], results["bf16"][1]
    shift = (statistics.mean(bf16) - statistics.mean(fp32)) / statistics.stdev(fp32)
    print(f"bf16 - fp32 {metric}: {shift:+.2f} fp32 standard deviations")


if __name__ == "__main__":
    main()
