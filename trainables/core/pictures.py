"""Pictures of samples: an image grid, or a scatter of 2-D points drawn into an image.

Every picture of samples (the trainer's at each evaluation, an export's, ``gantune generate``'s,
the report's real data) is drawn by ``write_picture``, which chooses between the two by the
dataset's spec. Scatter plots are rasterised with torch alone so the trainer needs no plotting
library.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor
from torchvision.utils import save_image

from trainables.data.records import DatasetSpec

GRID_ROWS = 8  # an unconditional generator's picture is an 8 x 8 grid
SCATTER_POINTS = 2000
SCATTER_PIXELS = 256
SCATTER_EXTENT = 1.25  # the plot spans this many times the farthest mode centre


def write_image_grid(path: str | Path, images: Tensor, nrow: int) -> None:
    save_image(images.detach().float().cpu(), str(path), nrow=nrow, normalize=True, value_range=(-1.0, 1.0))


def write_scatter(path: str | Path, points: Tensor, centers: Tensor) -> None:
    """Samples as white dots on black, mode centres as red crosses."""
    half_width = float(centers.abs().max()) * SCATTER_EXTENT + 1e-6
    canvas = torch.zeros(3, SCATTER_PIXELS, SCATTER_PIXELS)

    def pixels(xy: Tensor) -> tuple[Tensor, Tensor]:
        scaled = ((xy.cpu().float() / half_width + 1.0) / 2.0 * (SCATTER_PIXELS - 1)).round().long()
        inside = ((scaled >= 0) & (scaled < SCATTER_PIXELS)).all(dim=1)
        scaled = scaled[inside]
        return SCATTER_PIXELS - 1 - scaled[:, 1], scaled[:, 0]

    rows, cols = pixels(points)
    canvas[:, rows, cols] = 1.0
    red = torch.tensor([1.0, 0.0, 0.0])[:, None]
    rows, cols = pixels(centers)
    last = SCATTER_PIXELS - 1
    for offset in range(-3, 4):
        canvas[:, rows, (cols + offset).clamp(0, last)] = red
        canvas[:, (rows + offset).clamp(0, last), cols] = red
    save_image(canvas, str(path))


def picture_size(spec: DatasetSpec, conditional: bool) -> tuple[int, int | None]:
    """How many samples a generator's picture shows and in how many grid rows (None for a scatter).

    A conditional generator's grid has a row per class, each row cycling through the classes.
    """
    if not spec.is_image:
        return SCATTER_POINTS, None
    rows = spec.num_classes if conditional else GRID_ROWS
    return rows * rows, rows


def write_picture(path: str | Path, samples: Tensor, spec: DatasetSpec, rows: int | None = None) -> None:
    """Samples of ``spec``'s dataset as one picture: a grid of images (``rows`` rows, else as square as
    the count allows), or a scatter over the mixture's mode centres."""
    if spec.is_image:
        write_image_grid(path, samples, nrow=rows or max(1, math.ceil(math.sqrt(samples.shape[0]))))
    else:
        write_scatter(path, samples, spec.mixture.centers)
