"""Training data held as whole tensors on the training device, and the loaders that make it.

GAN steps are tiny, so a DataLoader with workers costs more than the step itself: the whole
training set lives on the device and batches are drawn by index there. Images stay uint8 there
(a byte a pixel) and are scaled to [-1, 1] a batch at a time (``records.as_samples``); 2-D
mixtures are raw coordinates.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

import torch

from trainables.data.files import FileImages, read_files
from trainables.data.records import DataBundle, DatasetSpec, Mixture
from trainables.errors import UsageError

DATA_ROOT_ENV = "GANTUNE_DATA_ROOT"

# The mode-collapse benchmarks of the GAN literature (Metz et al. 2017, Srivastava et al. 2017):
# 8 Gaussians on a circle of radius 2 with std 0.02, and a 5x5 grid at spacing 2 with std 0.05.
RING8_RADIUS, RING8_STD = 2.0, 0.02
GRID25_SPACING, GRID25_STD = 2.0, 0.05
MIXTURE_TRAIN_SIZE, MIXTURE_TEST_SIZE = 100_000, 10_000


def ring8() -> Mixture:
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    centers = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1) * RING8_RADIUS
    return Mixture(centers.float(), RING8_STD)


def grid25() -> Mixture:
    axis = (torch.arange(5, dtype=torch.float32) - 2) * GRID25_SPACING
    centers = torch.cartesian_prod(axis, axis)
    return Mixture(centers, GRID25_STD)


def resolve_data_root(data_root: str | None) -> Path:
    """``data_root`` from the config, else ``$GANTUNE_DATA_ROOT``, else ``./data``."""
    return Path(data_root or os.environ.get(DATA_ROOT_ENV) or "data")


def _torchvision_split(spec: DatasetSpec, root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision import datasets

    cls = getattr(datasets, spec.torchvision)
    try:
        dataset = cls(str(root), train=train, download=True)
    except (OSError, RuntimeError) as err:
        raise UsageError(
            f"data: {spec.name} is not under {str(root)!r} and could not be downloaded ({type(err).__name__}); "
            f"put torchvision's files there or set data_root / ${DATA_ROOT_ENV}"
        ) from None
    pixels = torch.as_tensor(dataset.data)
    pixels = pixels.unsqueeze(1) if pixels.ndim == 3 else pixels.permute(0, 3, 1, 2)
    return pixels.contiguous(), torch.as_tensor(dataset.targets, dtype=torch.long)


def load_images(spec: DatasetSpec, data_root: str | None) -> DataBundle:
    """A torchvision dataset's train and test splits, downloaded into the data root when missing."""
    root = resolve_data_root(data_root)
    return DataBundle(spec, *_torchvision_split(spec, root, train=True), *_torchvision_split(spec, root, train=False))


@lru_cache(maxsize=2)
def file_images(kind: str, data_root: str | None, image_size: int | None, channels: int | None) -> FileImages:
    """The user's images, read once per process (resolving a config and loading its data both need them)."""
    return read_files(kind, data_root, image_size, channels)


def load_mixture(spec: DatasetSpec, seed: int = 0) -> DataBundle:
    """Fixed train and test draws from the spec's mixture: every run of a 2-D dataset sees the same data."""
    generator = torch.Generator().manual_seed(seed)
    train_x, train_y = spec.mixture.sample(MIXTURE_TRAIN_SIZE, generator)
    test_x, test_y = spec.mixture.sample(MIXTURE_TEST_SIZE, generator)
    return DataBundle(spec, train_x, train_y, test_x, test_y)


def load(spec: DatasetSpec, data_root: str | None = None, image_size: int | None = None,
         channels: int | None = None) -> DataBundle:
    """The dataset on the CPU; move it with ``DataBundle.to``."""
    if spec.from_files:
        return DataBundle(spec, *file_images(spec.name, data_root, image_size, channels).split())
    return load_images(spec, data_root) if spec.is_image else load_mixture(spec)


def to_device(data: DataBundle, device: torch.device) -> DataBundle:
    """``data`` moved to ``device``; a dataset larger than the GPU's free memory is one line, not an
    out-of-memory error halfway through the copy."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        if data.nbytes > free:
            raise UsageError(f"data: {data.spec.name} takes {data.nbytes / 2**30:.2f} GiB and {device} has "
                             f"{free / 2**30:.2f} GiB free of {total / 2**30:.2f}; use fewer or smaller images "
                             "(image_size, channels) or a device with more memory")
    return data.to(device)


def balanced_labels(n: int, num_classes: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``0, 1, ..., num_classes - 1, 0, 1, ...``: the labels a conditional generator is scored and pictured with."""
    return torch.arange(n, device=device) % num_classes
