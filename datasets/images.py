"""Image sets: named, ordered collections of grayscale images in [0, 1].

Every data source (BSDS500 splits, a user's folder, ...) is an ImageSet: it
lists image ids and loads one as a (1, H, W) float tensor. Grayscale follows
ITU-R 601 luma (PIL's convert("L")), as BSD68 benchmarks do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm")


class DataMissingError(FileNotFoundError):
    """Raised when a dataset is not where it was looked for; the message says how to fix it."""


def load_gray(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).unsqueeze(0)


class ImageSet:
    name = "images"

    def ids(self) -> list[str]:
        raise NotImplementedError

    def path(self, image_id: str) -> Path:
        raise NotImplementedError

    def load(self, image_id: str) -> torch.Tensor:
        return load_gray(self.path(image_id))


class ImageFolder(ImageSet):
    """Every image file directly inside `path` (sorted by name; id = file stem)."""

    def __init__(self, path: str, name: str | None = None):
        self.root = Path(path).expanduser()
        self.name = name or self.root.name
        if not self.root.is_dir():
            raise DataMissingError(
                f"image folder {self.root} does not exist (set task.test.path to a folder of images)"
            )
        self._files = {p.stem: p for p in sorted(self.root.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
        if not self._files:
            raise DataMissingError(f"image folder {self.root} holds no images ({', '.join(IMAGE_EXTENSIONS)})")

    def ids(self) -> list[str]:
        return list(self._files)

    def path(self, image_id: str) -> Path:
        return self._files[image_id]


def center_crop(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None:
        return x
    h, w = x.shape[-2:]
    if size > min(h, w):
        raise ValueError(f"crop {size} is larger than the image ({h}x{w})")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]
