"""Training speed of the gantune trainer against a plain PyTorch loop, side by side in one run.

The plain loop is the textbook one (pytorch/examples' DCGAN): a DataLoader over the training
set, batches copied to the device, and ``.item()`` on the losses every step. Both loops train the
same networks with the same loss on DCGAN-MNIST at batch 64; only the loop around them differs.

    python bench/trainer.py --device cuda --steps 500
"""

from __future__ import annotations

import argparse

import torch

# bench/ is the script's folder, so its sibling modules import by their file names.
from timing import Loop, fastest_rates
from torch.utils.data import DataLoader, TensorDataset

from trainables.core.config import config_from_dict
from trainables.core.losses import build_loss, gradient_penalty
from trainables.core.models import build_discriminator, build_generator
from trainables.core.optimizers import build_optimizer
from trainables.core.trainer import Trainer
from trainables.data.datasets import load_dataset
from trainables.data.records import as_samples

VARIANTS = {
    "gan": {"loss": "gan"},
    "wgan-gp": {"loss": "wgan-gp", "d_steps": 5, "beta1": 0.0, "beta2": 0.9},
}


def plain_loop(config, data, device: torch.device) -> Loop:
    """One step = d_steps critic updates and one generator update, each batch from the DataLoader."""
    generator, critic = build_generator(config).to(device), build_discriminator(config).to(device)
    opt_g = build_optimizer(config, generator.parameters(), config.lr_g, capturable=False)
    opt_d = build_optimizer(config, critic.parameters(), config.lr_d, capturable=False)
    loss = build_loss(config)
    loader = DataLoader(TensorDataset(data.train_x), batch_size=config.batch_size, shuffle=True, drop_last=True)
    batches = iter(loader)

    def next_batch() -> torch.Tensor:
        nonlocal batches
        try:
            return as_samples(next(batches)[0])
        except StopIteration:
            batches = iter(loader)
            return as_samples(next(batches)[0])

    def step() -> None:
        for _ in range(config.d_steps):
            real = next_batch().to(device)
            fake = generator(torch.randn(real.shape[0], config.latent_dim, device=device)).detach()
            d_loss = loss.discriminator(critic(real), critic(fake))
            if config.gp_weight:
                d_loss = d_loss + config.gp_weight * gradient_penalty(critic, real, fake, None)
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            d_loss.item()
        g_loss = loss.generator(critic(generator(torch.randn(config.batch_size, config.latent_dim, device=device))))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        g_loss.item()

    def run(steps: int) -> None:
        for _ in range(steps):
            step()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per loop, variant and round")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (CUDA graph capture included)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds, the loops taking turns; the best counts")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--no-cuda-graph", action="store_true", help="time the trainer's eager path")
    args = parser.parse_args()

    device = torch.device(args.device)
    data = load_dataset("mnist", args.data_root)
    print(f"DCGAN-MNIST, batch 64, {args.rounds} rounds of {args.steps} timed steps, device {device}")
    print(f"{'variant':<10} {'plain loop':>12} {'gantune':>12} {'ratio':>8}")
    for name, variant in VARIANTS.items():
        config = config_from_dict(
            {"dataset": "mnist", "arch": "dcgan", "batch_size": 64, "device": args.device,
             "cuda_graph": not args.no_cuda_graph, **variant}
        )
        loops = {"plain": plain_loop(config, data, device), "gantune": Trainer(config, data).run_steps}
        rates = fastest_rates(loops, device, args.warmup, args.steps, args.rounds)
        plain, ours = rates["plain"], rates["gantune"]
        print(f"{name:<10} {plain:>10.1f}/s {ours:>10.1f}/s {ours / plain:>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
