"""What a shipped training config reaches: each report's mode coverage (2-D mixtures) or FD,
IS and classes covered (images), trained to the config's end as ``gantune train`` trains it.

The claims in ``configs/``'s headers and the README (WGAN-GP covers the 25 grid modes within
about 5000 steps on a CPU) are read off this, not off the test suite: a training run long enough
to show them is a benchmark.

    python bench/configs.py configs/grid25_wgan_gp.yaml
    python bench/configs.py configs/ring8_gan.yaml --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import time

import torch

from trainables.core.config import load_config
from trainables.core.trainer import Trainer

SHOWN = ("modes_covered", "high_quality", "js_modes", "fd", "is", "classes_covered")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a training config YAML, e.g. configs/grid25_wgan_gp.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small nets run fastest on one)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, as gantune train takes them")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for seed in args.seeds:
        started = time.perf_counter()
        trainer = Trainer(load_config(args.config, [*args.overrides, f"seed={seed}"]))
        for report in trainer.reports():
            shown = "  ".join(f"{key} {report[key]:.4g}" for key in SHOWN if key in report)
            print(f"seed {seed}  step {report['step']:>6}  {shown}  ({time.perf_counter() - started:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()
