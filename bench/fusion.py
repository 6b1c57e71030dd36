"""Two mechanisms for training K same-shape nets as one model, timed side by side in one run.

- ``vmap``: what the cohort does (``trainables/cohort/stacked_net.py``): weights stacked along a slot
  dimension, the unchanged nets run with ``torch.func.vmap`` over ``functional_call``.
- ``hand-fused``: horizontal fusion written out, as HFTA (MLSys 2021) does: each linear layer one
  ``baddbmm`` over K weight matrices, each convolution one grouped convolution over K x C
  channels, batch norm over K x C channels, images laid out (batch, K x C, H, W) between layers.

Both run the same work: K generators make a batch, K critics score it and a real batch, and one
backward pass reaches every weight. On the CPU: grid25 MLP (width 128, batch 256); with
``--device cuda``: DCGAN-MNIST, batch 64 (the nets of ``bench/cohort.py``).

    python bench/fusion.py
    python bench/fusion.py --device cuda
    python bench/fusion.py --nets cuda          # the DCGAN nets, on the CPU
"""

from __future__ import annotations

import argparse
from typing import Callable

import torch

# bench/ is the script's folder, so its sibling benchmarks import by their file names.
from cohort import NETS
from timing import Loop, fastest_rates
from torch import Tensor, nn

from trainables.cohort.stacked_net import StackedNet
from trainables.core.config import config_from_dict
from trainables.core.models import build_discriminator, build_generator
from trainables.data.datasets import load_dataset
from trainables.data.records import as_samples

COHORT_SIZES = {"cpu": (2, 8, 32), "cuda": (8, 32, 128)}


class FusedLinear(nn.Module):
    """K linear layers as one ``baddbmm`` on (K, batch, features)."""

    def __init__(self, layer: nn.Linear, slots: int):
        super().__init__()
        self.weight = nn.Parameter(layer.weight.detach().t().expand(slots, -1, -1).clone())
        self.bias = nn.Parameter(layer.bias.detach().expand(slots, 1, -1).clone())

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class ToImages(nn.Module):
    """(K, batch, C x H x W) vectors, or (K, batch, C, H, W) images, to the fused layout (batch, K x C, H, W)."""

    def __init__(self, shape: tuple[int, int, int]):
        super().__init__()
        self.shape = shape

    def forward(self, x: Tensor) -> Tensor:
        slots, batch = x.shape[:2]
        channels, height, width = self.shape
        return x.view(slots, batch, *self.shape).transpose(0, 1).reshape(batch, slots * channels, height, width)


class ToVectors(nn.Module):
    """The fused image layout back to (K, batch, features); vectors pass through."""

    def __init__(self, slots: int):
        super().__init__()
        self.slots = slots

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            return x
        batch = x.shape[0]
        return x.view(batch, self.slots, -1).transpose(0, 1)


def grouped(layer: nn.Module, slots: int) -> nn.Module:
    """A convolution (or transposed one) over K x C channels in K groups."""
    kind = type(layer)
    return kind(layer.in_channels * slots, layer.out_channels * slots, layer.kernel_size, layer.stride,
                layer.padding, groups=slots, bias=layer.bias is not None)


def hand_fused(module: nn.Module, slots: int) -> nn.Module:
    """``module`` (any net the model axis builds for unconditional GANs) fused over ``slots`` copies."""
    if isinstance(module, nn.Linear):
        return FusedLinear(module, slots)
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return grouped(module, slots)
    if isinstance(module, nn.BatchNorm2d):
        return nn.BatchNorm2d(module.num_features * slots)
    if isinstance(module, nn.Unflatten):
        return ToImages(tuple(module.unflattened_size))
    if isinstance(module, nn.Flatten):
        return ToVectors(slots)
    if isinstance(module, nn.Sequential):
        return nn.Sequential(*(hand_fused(child, slots) for child in module))
    if not any(module.parameters()):
        return module  # activations act elementwise in either layout
    raise TypeError(f"no fused form of {type(module).__name__}")


class FusedGAN:
    """K unconditional generators and critics, hand-fused."""

    def __init__(self, generator: nn.Module, critic: nn.Module, slots: int):
        self.generator = hand_fused(generator.body, slots)
        self.features = hand_fused(critic.features, slots)
        self.head = FusedLinear(critic.head, slots)
        self.slots = slots

    def parameters(self) -> list[Tensor]:
        return [*self.generator.parameters(), *self.features.parameters(), *self.head.parameters()]

    def criticise(self, x: Tensor) -> Tensor:
        return self.head(ToVectors(self.slots)(self.features(x))).squeeze(-1)

    def to_input_layout(self, real: Tensor) -> Tensor:
        """Real samples stacked (K, batch, ...) in the layout the critic's first layer takes."""
        return real if real.dim() == 3 else ToImages(tuple(real.shape[2:]))(real)


def stacked_step(config, slots: int) -> tuple[Callable[[Tensor, Tensor], Tensor], list[Tensor]]:
    generator = StackedNet(build_generator(config), slots, False)
    critic = StackedNet(build_discriminator(config), slots, False)

    def step(z: Tensor, real: Tensor) -> Tensor:
        fake = generator.forward(generator.params, generator.buffers, z, None)
        return (critic.forward(critic.params, critic.buffers, real, None)
                - critic.forward(critic.params, critic.buffers, fake, None)).sum()

    return step, [*generator.params.values(), *critic.params.values()]


def fused_step(config, slots: int) -> tuple[Callable[[Tensor, Tensor], Tensor], list[Tensor]]:
    fused = FusedGAN(build_generator(config), build_discriminator(config), slots)

    def step(z: Tensor, real: Tensor) -> Tensor:
        return (fused.criticise(fused.to_input_layout(real)) - fused.criticise(fused.generator(z))).sum()

    return step, fused.parameters()


def backward_loop(step: Callable[[Tensor, Tensor], Tensor], params: list[Tensor], z: Tensor, real: Tensor) -> Loop:
    def run(steps: int) -> None:
        for _ in range(steps):
            torch.autograd.grad(step(z, real), params)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round (default 20 CPU, 200 GPU)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per mechanism, taking turns; the best counts")
    parser.add_argument("--nets", choices=tuple(NETS), default=None,
                        help="whose nets to time: the CPU's (grid25 MLP) or the GPU's (DCGAN-MNIST); default: the device's")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()

    device = torch.device(args.device)
    steps = args.steps or (200 if device.type == "cuda" else 20)
    config = config_from_dict({**NETS[args.nets or device.type], "device": args.device})
    data = load_dataset(config.dataset, args.data_root).to(device)
    print(f"{config.dataset} {config.arch} width {config.width} batch {config.batch_size}, device {device}; "
          "forward and backward of K generators and critics")
    print(f"{'K':>4} {'vmap ms':>9} {'fused ms':>9} {'vmap / fused':>13}")
    torch.set_default_device(device)
    for slots in COHORT_SIZES[device.type]:
        z = torch.randn(slots, config.batch_size, config.latent_dim)
        real = as_samples(data.train_x[torch.randint(0, data.train_x.shape[0], (slots, config.batch_size))])
        loops = {"vmap": backward_loop(*stacked_step(config, slots), z, real),
                 "fused": backward_loop(*fused_step(config, slots), z, real)}
        rates = fastest_rates(loops, device, args.warmup, steps, args.rounds)
        vmap_s, fused_s = 1 / rates["vmap"], 1 / rates["fused"]
        print(f"{slots:>4} {vmap_s * 1e3:>9.2f} {fused_s * 1e3:>9.2f} {vmap_s / fused_s:>12.2f}x", flush=True)


if __name__ == "__main__":
    main()
