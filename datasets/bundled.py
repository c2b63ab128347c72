"""Image sets that need no download: scikit-image's bundled images and seeded phantoms.

Out-of-distribution test data for natural-image regularizers (the `ood` probe):
text, textures, microscopy and astronomy from `skimage/data` (shipped inside the
scikit-image wheel), and random-ellipse / Shepp-Logan phantoms (deepinv's
generators, seeded so every run sees the same phantoms).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from regbench.datasets.images import ImageSet

# id -> file inside skimage/data; grouped as the probe documents them
SKIMAGE_OOD = {
    "text": "text.png",
    "page": "page.png",  # text
    "brick": "brick.png",
    "grass": "grass.png",
    "gravel": "gravel.png",  # textures
    "cell": "cell.png",
    "microaneurysms": "microaneurysms.png",  # microscopy
    "moon": "moon.png",
    "hubble_deep_field": "hubble_deep_field.jpg",  # astronomy
}


class SkimageImages(ImageSet):
    """Grayscale versions of scikit-image's bundled images (no network)."""

    name = "skimage"

    def __init__(self, images: list[str] | None = None):
        import skimage

        self.root = Path(skimage.__file__).parent / "data"
        names = list(images) if images else list(SKIMAGE_OOD)
        unknown = [n for n in names if n not in SKIMAGE_OOD]
        if unknown:
            raise ValueError(f"unknown skimage image(s) {unknown}; known: {', '.join(SKIMAGE_OOD)}")
        self._ids = names

    def ids(self) -> list[str]:
        return list(self._ids)

    def path(self, image_id: str) -> Path:
        return self.root / SKIMAGE_OOD[image_id]


class Phantoms(ImageSet):
    """`n` random-ellipse phantoms (seeded per index) and the Shepp-Logan phantom, size x size in [0, 1]."""

    name = "phantoms"

    def __init__(self, n: int = 4, size: int = 256, seed: int = 0):
        if n < 0 or size < 16:
            raise ValueError(f"phantoms: n={n} must be >= 0 and size={size} >= 16")
        self.n, self.size, self.seed = int(n), int(size), int(seed)

    def ids(self) -> list[str]:
        return ["shepp_logan", *(f"ellipses_{i:03d}" for i in range(self.n))]

    def load(self, image_id: str) -> torch.Tensor:
        from deepinv.utils.phantoms import generate_random_phantom, generate_shepp_logan

        if image_id == "shepp_logan":
            x = generate_shepp_logan(self.size)
        else:
            state = np.random.get_state()  # deepinv draws from numpy's global generator
            try:
                np.random.seed(self.seed * 100_003 + int(image_id.rsplit("_", 1)[1]))
                x = generate_random_phantom(self.size)
            finally:
                np.random.set_state(state)
        x = x.float().reshape(self.size, self.size)
        return ((x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)).unsqueeze(0)

    def path(self, image_id: str) -> Path:
        raise NotImplementedError("phantoms are generated, not read from files")
