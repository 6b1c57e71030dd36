"""Image datasets read from the user's own files: ``dataset: folder`` and ``dataset: array``.

A folder holds PNG or JPEG files, either flat (no labels) or in torchvision's ``ImageFolder``
layout, one subfolder per class (the sorted subfolder names are the classes). An array file is a
NumPy ``.npy`` of uint8 images, or an ``.npz`` holding ``images`` and, optionally, ``labels``;
images are (N, H, W) or (N, H, W, C). Nothing is ever unpickled: arrays load with
``allow_pickle=False``.

Every image becomes ``channels`` x ``image_size`` x ``image_size`` uint8 pixels: resized so that
its shorter side is ``image_size`` and centre-cropped, as torchvision's ``Resize`` then
``CenterCrop`` do. The identity of the data (a sha256 of the files' bytes) goes into the
evaluator's cache key, so a changed folder trains a new evaluator. Anything wrong with the files
is one ``UsageError`` line naming the file or key, raised before a run writes anything.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from trainables.errors import ConfigError, UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy", ".npz")
# The nets build square images of these sizes (trainables.core.models).
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 128
# Metrics compare samples with a held-out split: this fraction of the images, drawn with a fixed
# seed so that every run of a search scores against the same images. k-NN metrics need a few
# dozen test images at least, hence the floor on the dataset's size.
TEST_FRACTION = 0.1
SPLIT_SEED = 0
MIN_IMAGES = 100


@dataclass(frozen=True)
class FileImages:
    """A dataset read from files: uint8 pixels (N, C, S, S), class indices (None without labels),
    the class names, and the sha256 of the bytes it was read from."""

    images: torch.Tensor
    labels: torch.Tensor | None
    classes: tuple[str, ...]
    identity: str

    @property
    def test_count(self) -> int:
        return math.ceil(self.images.shape[0] * TEST_FRACTION)

    def split(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Train images and labels, then test images and labels: a seeded ``TEST_FRACTION`` held out.
        Without labels, every label is 0."""
        count = self.images.shape[0]
        order = torch.randperm(count, generator=torch.Generator().manual_seed(SPLIT_SEED))
        test, train = order[: self.test_count], order[self.test_count:]
        labels = self.labels if self.labels is not None else torch.zeros(count, dtype=torch.long)
        return self.images[train], labels[train], self.images[test], labels[test]


def read_files(kind: str, data_root: str | None, image_size: int | None, channels: int | None) -> FileImages:
    """The images of a ``folder`` or ``array`` dataset at ``data_root``, as ``image_size`` and ``channels`` ask."""
    if not data_root:
        raise ConfigError(f"config: dataset {kind} needs data_root: the path of the "
                          f"{'folder of images' if kind == 'folder' else '.npy or .npz file'}")
    path = Path(data_root).expanduser()
    if not path.exists():
        raise UsageError(f"data_root: {str(path)!r} does not exist; give the path of your "
                         f"{'folder of images' if kind == 'folder' else '.npy or .npz file'}")
    found = _read_folder(path, image_size, channels) if kind == "folder" else _read_array(path, image_size, channels)
    if found.images.shape[0] < MIN_IMAGES:
        raise UsageError(f"data_root: {str(path)!r} holds {found.images.shape[0]} images; "
                         f"a GAN and its metrics need {MIN_IMAGES} or more")
    return found


# ------------------------------------------------------------------------------ folders
def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


def _folder_layout(root: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """The image files, their class indices and the class names (empty for a flat folder)."""
    if not root.is_dir():
        raise UsageError(f"data_root: {str(root)!r} is a file; dataset folder needs a folder of images "
                         "(use dataset: array for a .npy or .npz file)")
    top = _images_in(root)
    class_folders = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".") and _images_in(p)]
    if class_folders and top:
        raise UsageError(f"data_root: {str(root)!r} holds images ({top[0].name}) next to class folders "
                         f"({class_folders[0].name}/); move every image into a class folder, or use a flat folder")
    if class_folders:
        files, labels = [], []
        for index, folder in enumerate(class_folders):
            members = _images_in(folder)
            files += members
            labels += [index] * len(members)
        return files, labels, tuple(folder.name for folder in class_folders)
    if not top:
        raise UsageError(f"data_root: no PNG or JPEG images in {str(root)!r}; put images there, flat or in "
                         "one subfolder per class")
    return top, [], ()


def _open_image(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, UnidentifiedImageError, SyntaxError) as err:
        raise UsageError(f"data: {str(path)!r} is not a readable PNG or JPEG image ({type(err).__name__}); "
                         "remove or replace it") from None


def _own_size(size: int, where: Path) -> int:
    """The images' own size, when the nets build it; otherwise one line asking for ``image_size``."""
    if not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise ConfigError(f"config: the images in {str(where)!r} are {size} px; set image_size ({MIN_IMAGE_SIZE} to "
                          f"{MAX_IMAGE_SIZE}) to resize and centre-crop them")
    return size


def _common_square_size(sizes: dict[Path, tuple[int, int]], where: Path) -> int:
    """The one square size every image has; otherwise one line asking for ``image_size``."""
    distinct = sorted(set(sizes.values()))
    if len(distinct) == 1 and distinct[0][0] == distinct[0][1]:
        return _own_size(distinct[0][0], where)
    first = next(iter(sizes.items()))
    other = next(((path, size) for path, size in sizes.items() if size != first[1]), first)
    shown = f"{other[0].name} is {other[1][0]}x{other[1][1]}, {first[0].name} {first[1][0]}x{first[1][1]}"
    shape = "differ in size" if len(distinct) > 1 else "are not square"
    raise ConfigError(f"config: the images in {str(where)!r} {shape} ({shown}); set image_size to resize and "
                      "centre-crop them to one square size")


def _read_folder(root: Path, image_size: int | None, channels: int | None) -> FileImages:
    from PIL import Image

    files, labels, classes = _folder_layout(root)
    opened = {path: _open_image(path) for path in files}
    size = image_size or _common_square_size({path: image.size for path, image in opened.items()}, root)
    if channels is None:
        channels = 1 if all(image.mode in ("1", "L", "LA", "I", "I;16", "F") for image in opened.values()) else 3
    mode = "L" if channels == 1 else "RGB"
    pixels = torch.empty(len(files), channels, size, size, dtype=torch.uint8)
    digest = hashlib.sha256()
    for index, (path, image) in enumerate(opened.items()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
        fitted = _resize_and_crop(image.convert(mode), size, Image.Resampling.BILINEAR)
        pixels[index] = torch.frombuffer(bytearray(fitted.tobytes()), dtype=torch.uint8).view(
            size, size, channels).permute(2, 0, 1)
    digest.update(f"{size}/{channels}".encode())
    return FileImages(pixels, torch.tensor(labels, dtype=torch.long) if classes else None, classes,
                      digest.hexdigest())


def _resize_and_crop(image, size: int, resample):
    """Shorter side to ``size`` (with antialiasing), then the centre ``size`` x ``size``."""
    width, height = image.size
    if (width, height) != (size, size):
        scale = size / min(width, height)
        width, height = max(size, round(width * scale)), max(size, round(height * scale))
        image = image.resize((width, height), resample)
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


# ------------------------------------------------------------------------------- arrays
def _read_array(path: Path, image_size: int | None, channels: int | None) -> FileImages:
    import numpy as np

    if path.suffix.lower() not in ARRAY_SUFFIXES:
        raise UsageError(f"data_root: {str(path)!r} is not a .npy or .npz file; dataset array reads NumPy files "
                         "(use dataset: folder for a folder of images)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UsageError(f"data: {str(path)!r} is not a readable NumPy file of numbers ({type(err).__name__}); "
                         "save it with numpy.save or numpy.savez") from None
    if isinstance(loaded, np.ndarray):
        images, labels = loaded, None
    else:
        with loaded:
            if "images" not in loaded.files:
                raise UsageError(f"data: {str(path)!r} has no array named 'images' (it has {', '.join(loaded.files)}); "
                                 "save it with numpy.savez(path, images=..., labels=...)")
            images = loaded["images"]
            labels = loaded["labels"] if "labels" in loaded.files else None
    if images.dtype != np.uint8:
        raise UsageError(f"data: the images in {str(path)!r} are {images.dtype}; save them as uint8 pixels (0 to 255)")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise UsageError(f"data: the images in {str(path)!r} have shape {images.shape}; expected (N, H, W) or "
                         "(N, H, W, C) with C 1 or 3")
    if labels is not None:
        if labels.shape != (images.shape[0],) or labels.dtype.kind not in "iu":
            raise UsageError(f"data: the labels in {str(path)!r} must be {images.shape[0]} integers, one per image; "
                             f"got {labels.dtype} of shape {labels.shape}")
        labels = torch.as_tensor(labels.astype(np.int64))
    height, width = images.shape[1:3]
    if image_size is None:
        if height != width:
            raise ConfigError(f"config: the images in {str(path)!r} are {height}x{width}, not square; set "
                              "image_size to resize and centre-crop them")
        image_size = _own_size(height, path)
    pixels = torch.as_tensor(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    pixels = _fit_tensor(pixels, image_size, channels or pixels.shape[1])
    classes, labels = _classes_of(labels)
    digest = hashlib.sha256(path.read_bytes())
    digest.update(f"{image_size}/{pixels.shape[1]}".encode())
    return FileImages(pixels.contiguous(), labels, classes, digest.hexdigest())


def _classes_of(labels: torch.Tensor | None) -> tuple[tuple[str, ...], torch.Tensor | None]:
    """Class names and 0-based indices from an array's labels (any integers: 3 and 7 become classes 0 and 1)."""
    if labels is None:
        return (), None
    values, indices = torch.unique(labels, sorted=True, return_inverse=True)
    return tuple(str(value) for value in values.tolist()), indices


def _fit_tensor(pixels: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) to (N, channels, size, size): grey to RGB by repetition, RGB to grey by
    luminance (ITU-R 601, as Pillow's ``convert("L")``), then resized and centre-cropped."""
    if pixels.shape[1] != channels:
        if channels == 3:
            pixels = pixels.expand(-1, 3, -1, -1)
        else:
            weights = torch.tensor([299, 587, 114], dtype=torch.float32).view(1, 3, 1, 1) / 1000
            pixels = (pixels.float() * weights).sum(dim=1, keepdim=True).round().to(torch.uint8)
    height, width = pixels.shape[-2:]
    if (height, width) == (size, size):
        return pixels
    scale = size / min(height, width)
    resized = [max(size, round(height * scale)), max(size, round(width * scale))]
    chunks = [F.interpolate(chunk.float(), size=resized, mode="bilinear", antialias=True, align_corners=False)
              for chunk in pixels.split(1024)]
    fitted = torch.cat(chunks).round().clamp(0, 255).to(torch.uint8)
    top, left = (resized[0] - size) // 2, (resized[1] - size) // 2
    return fitted[..., top:top + size, left:left + size]
