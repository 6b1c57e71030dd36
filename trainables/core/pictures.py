"""Pictures of samples: an image grid, or a scatter of 2-D points drawn into an image.

Every picture of samples (the trainer's at each evaluation, an export's, ``gantune generate``'s,
the report's real data) is drawn by ``write_picture``, which chooses between the two by the
dataset's spec. Both are laid out with torch and written with Pillow: the trainer needs no
plotting library, and not torchvision either, whose import (it loads ``torch._dynamo``) costs
every trial process seconds of start-up.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from trainables.data.records import DatasetSpec

GRID_ROWS = 8  # an unconditional generator's picture is an 8 x 8 grid
SCATTER_POINTS = 2000
SCATTER_PIXELS = 256
SCATTER_EXTENT = 1.25  # the plot spans this many times the farthest mode centre
GRID_PADDING = 2  # black pixels around and between a grid's images, as torchvision's grids have


def write_png(path: str | Path, canvas: Tensor) -> None:
    """A (3, H, W) canvas of values in [0, 1] as an 8-bit RGB PNG."""
    pixels = canvas.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    Image.fromarray(pixels, mode="RGB").save(str(path), format="PNG")


def write_image_grid(path: str | Path, images: Tensor, nrow: int) -> None:
    """Images with values in [-1, 1] (N, C, H, W), ``nrow`` to a row, on a black grid
    ``nrow * W + (nrow + 1) * GRID_PADDING`` pixels across; one channel is drawn grey."""
    images = (images.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) / 2.0
    count, channels, height, width = images.shape
    if channels == 1:
        images = images.expand(count, 3, height, width)
    rows = math.ceil(count / nrow)
    cell_h, cell_w = height + GRID_PADDING, width + GRID_PADDING
    canvas = torch.zeros(3, rows * cell_h + GRID_PADDING, nrow * cell_w + GRID_PADDING)
    for index, image in enumerate(images[:, :3]):
        top, left = GRID_PADDING + (index // nrow) * cell_h, GRID_PADDING + (index % nrow) * cell_w
        canvas[:, top:top + height, left:left + width] = image
    write_png(path, canvas)


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
    write_png(path, canvas)


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
