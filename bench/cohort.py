"""Trial-steps per second of the cohort trainer beside one trial at a time, side by side in one run.

Three ways to train the same nets with the same loss: the textbook loop (bench/trainer.py's
plain loop: a DataLoader, ``.item()`` every step), gantune's single-trial ``Trainer`` (one CUDA
graph per step on a GPU), and a ``Cohort`` of K trials in one step, for K = 1, 2, 4, ...
On the CPU: grid25 MLP (width 128, batch 256). With ``--device cuda``: DCGAN-MNIST, batch 64.
The achieved model TFLOP/s counts the FLOPs of one trial's step (``torch.utils.flop_counter``)
times the trial-steps per second; its share of the device's peak is printed when the peak is known.

    python bench/cohort.py                      # CPU, K up to 32
    python bench/cohort.py --device cuda        # K up to 256
    python bench/cohort.py --device cuda --mixed-precision bf16
"""

from __future__ import annotations

import argparse

import torch

# bench/ is the script's folder, so its sibling modules import by their file names.
from timing import Loop, fastest_rates
from torch.utils.flop_counter import FlopCounterMode
from trainer import plain_loop

from trainables.cohort.cohort import Cohort
from trainables.core.config import config_from_dict
from trainables.core.trainer import Trainer
from trainables.data.datasets import load_dataset

NETS = {
    "cpu": dict(dataset="grid25", arch="mlp", width=128, batch_size=256, latent_dim=8),
    "cuda": dict(dataset="mnist", arch="dcgan", batch_size=64),
}
COHORT_SIZES = {"cpu": (1, 2, 4, 8, 16, 32), "cuda": (1, 2, 4, 8, 16, 32, 64, 128, 256)}
# Dense peaks in TFLOP/s (SXM parts) by the precision the step computes in. fp32 is the CUDA cores'
# peak: PyTorch leaves TF32 matmuls off (torch.backends.cuda.matmul.allow_tf32), though cuDNN may
# run convolutions in TF32 (torch.backends.cudnn.allow_tf32), so a conv net's fp32 share can
# exceed what the CUDA cores alone give. bf16 is the tensor cores' dense peak.
PEAK_TFLOPS = {"fp32": {"H100": 66.9, "H200": 66.9}, "bf16": {"H100": 989.4, "H200": 989.4}}


def step_flops(config, data) -> int:
    """FLOPs of one eager training step of one trial: forward and backward of every sub-step."""
    trainer = Trainer(config_from_dict({**config.to_dict(), "cuda_graph": False}), data)
    with FlopCounterMode(display=False) as counter:
        trainer.run_steps(1)
    return counter.get_total_flops()


def cohort_loop(config, data, slots: int) -> Loop:
    """K slots of ``config`` with seeds 0..K-1, all training: one step is one step of every slot."""
    cohort = Cohort(config, slots, data)
    for index in range(slots):
        cohort.fill(index, config_from_dict({**config.to_dict(), "seed": index}))
    return cohort.run_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=None, help="timed steps per loop and round (default 30 CPU, 200 GPU)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (CUDA graph capture included)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds, the loops taking turns; the best counts")
    parser.add_argument("--max-cohort", type=int, default=None, help="largest K to time")
    parser.add_argument("--loss", default="gan")
    parser.add_argument("--mixed-precision", default="fp32", choices=("fp32", "bf16"),
                        help="the step's compute precision (bf16: autocast), for every loop but the plain one")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for the share column")
    args = parser.parse_args()

    device = torch.device(args.device)
    steps = args.steps or (200 if device.type == "cuda" else 30)
    nets = NETS[device.type]
    config = config_from_dict({**nets, "loss": args.loss, "device": args.device, "steps": 10**9,
                               "mixed_precision": args.mixed_precision})
    data = load_dataset(config.dataset, args.data_root).to(device)
    flops = step_flops(config, data)
    peak = args.peak_tflops
    if peak is None and device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = next((value for key, value in PEAK_TFLOPS[args.mixed_precision].items() if key in name), None)
    threads = torch.get_num_threads()
    print(f"{config.dataset} {config.arch} width {config.width} batch {config.batch_size}, loss {args.loss}, "
          f"mixed_precision {args.mixed_precision}, "
          f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{threads} threads'}), "
          f"best of {args.rounds} rounds of {steps} timed steps; {flops / 1e9:.2f} GFLOP per trial-step")

    loops = {"plain loop": plain_loop(config, data, device), "trainer": Trainer(config, data).run_steps}
    trials_per_step = dict.fromkeys(loops, 1)
    for slots in COHORT_SIZES[device.type]:
        if args.max_cohort and slots > args.max_cohort:
            break
        loops[f"cohort K={slots}"] = cohort_loop(config, data, slots)
        trials_per_step[f"cohort K={slots}"] = slots
    rates = fastest_rates(loops, device, args.warmup, steps, args.rounds)
    trial_rates = {name: rate * trials_per_step[name] for name, rate in rates.items()}
    print(f"{'loop':<14} {'trial-steps/s':>12} {'vs one':>9} {'TFLOP/s':>9} {'of peak':>7}")
    for name, rate in trial_rates.items():
        tflops = rate * flops / 1e12
        share = f"{100 * tflops / peak:>6.2f}%" if peak else "      -"
        print(f"{name:<14} {rate:>12.1f} {rate / trial_rates['trainer']:>8.2f}x {tflops:>9.3f} {share}")


if __name__ == "__main__":
    main()
