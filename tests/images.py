"""Checks on the pictures the product writes: decoded, of the size it should draw, and not blank.

An image grid lays ``n`` columns of ``side``-pixel images out with 2 pixels of padding around
and between them (torchvision's layout), so a grid is ``n * side + (n + 1) * 2`` pixels across; a 2-D
scatter is a fixed 256-pixel square of white sample dots and red mode crosses on black.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

GRID_PADDING = 2
SCATTER_SIDE = 256  # trainables' scatter canvas
MNIST_SIDE = 28


def grid_side(columns: int, image_side: int = MNIST_SIDE) -> int:
    """Pixels across a grid of ``columns`` images of ``image_side`` pixels."""
    return columns * image_side + (columns + 1) * GRID_PADDING


def read_picture(path: str | Path, width: int, height: int | None = None) -> np.ndarray:
    """Decode ``path``; assert it is ``width`` x ``height`` (square by default) and not one flat colour.

    Returns the pixels as an (H, W, C) uint8 array."""
    from PIL import Image

    with Image.open(path) as picture:
        picture.load()
        size = picture.size
        pixels = np.asarray(picture.convert("RGB"))
    assert size == (width, height or width), (str(path), size)
    distinct = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(distinct) > 1, f"{path} is one flat colour {distinct.tolist()}"
    return pixels


def read_image_grid(path: str | Path, columns: int, rows: int | None = None, image_side: int = MNIST_SIDE) -> np.ndarray:
    """A grid of ``columns`` x ``rows`` images (square by default), not constant."""
    return read_picture(path, grid_side(columns, image_side), grid_side(rows or columns, image_side))


def read_scatter(path: str | Path) -> np.ndarray:
    """A 256 x 256 scatter that shows both sample dots (white) and mode centres (red)."""
    pixels = read_picture(path, SCATTER_SIDE)
    white = (pixels == 255).all(axis=2)
    red = (pixels[..., 0] == 255) & (pixels[..., 1] == 0) & (pixels[..., 2] == 0)
    assert white.any(), f"{path} shows no sample inside the plot"
    assert red.any(), f"{path} shows no mode centre"
    return pixels
