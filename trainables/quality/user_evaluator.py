"""The user's own feature extractor (``evaluator: PATH``): a ``torch.export`` program (``.pt2``) or a
TorchScript file (``.pt``) that maps a batch of images to a batch of feature vectors.

For users who hold Inception, DINOv2 or CLIP weights: the image metrics (``fd``, ``kid`` and the
k-NN ones) are then taken in those features. The extractor gets images as the generator makes
them, float32 (batch, channels, size, size) in [-1, 1]; any resizing or normalisation it needs
belongs inside it. It has no classifier head, so no class metrics are reported. Its
``evaluator_hash`` is the sha256 of the file, so values under different extractors never compare.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from trainables.errors import UsageError
from trainables.quality.evaluator_net import CHUNK_SIZE

EXPORT_SUFFIXES = (".pt2",)
SCRIPT_SUFFIXES = (".pt", ".pth", ".ts")


class UserFeatures(nn.Module):
    """The user's extractor run in chunks without autograd, its output checked to be (batch, features)."""

    def __init__(self, module: nn.Module, source: Path) -> None:
        super().__init__()
        self.module = module
        self.source = source

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        outputs = []
        for chunk in images.split(CHUNK_SIZE):
            features = self.module(chunk)
            if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] != chunk.shape[0]:
                shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
                raise UsageError(f"evaluator: {str(self.source)!r} returned {shape} for {chunk.shape[0]} images; it "
                                 "must return one feature vector per image, (batch, features)")
            outputs.append(features.float())
        return torch.cat(outputs)


def load_user_features(path: str, sample_shape: tuple[int, ...], device: torch.device) -> tuple[UserFeatures, str]:
    """The extractor at ``path`` on ``device``, tried on two images of ``sample_shape``; and its sha256."""
    source = Path(path).expanduser()
    if not source.is_file():
        raise UsageError(f"evaluator: {str(source)!r} is not a file; give a torch.export (.pt2) or TorchScript (.pt) "
                         "file that maps image batches to feature vectors")
    try:
        if source.suffix in EXPORT_SUFFIXES:
            module = torch.export.load(str(source)).module()
        elif source.suffix in SCRIPT_SUFFIXES:
            module = torch.jit.load(str(source), map_location="cpu")
        else:
            raise UsageError(f"evaluator: {str(source)!r} must end in .pt2 (torch.export) or .pt (TorchScript)")
    except (RuntimeError, ValueError, OSError) as err:
        raise UsageError(f"evaluator: {str(source)!r} could not be loaded ({type(err).__name__}); save it with "
                         "torch.export.save or torch.jit.save") from None
    features = UserFeatures(module.to(device), source)
    try:
        features(torch.zeros(2, *sample_shape, device=device))
    except UsageError:
        raise
    except Exception as err:  # whatever the user's program raises on the images it will be given
        raise UsageError(f"evaluator: {str(source)!r} fails on images of shape {tuple(sample_shape)} "
                         f"({type(err).__name__}); it must take (batch, {', '.join(map(str, sample_shape))}) "
                         "floats in [-1, 1]") from None
    return features, hashlib.sha256(source.read_bytes()).hexdigest()
