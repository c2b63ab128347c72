"""Random ellipse phantoms, the synthetic CT data of DIVal's "ellipses" benchmark.

Each image is a sum of random ellipses (ODL's `ellipsoid_phantom`), clipped at 0
and scaled to a maximum of 1. An image is a continuous object fixed by
(split, image id, seed): its ellipse parameters are drawn from a generator seeded
by those, so any resolution can be rendered and the same phantom can be simulated
on a finer grid than the one it is reconstructed on (no inverse crime).
Nothing is stored on disk; splits of any size cost nothing until rendered.

Parameters per phantom (DIVal's recipe): number of ellipses ~ min(Poisson(40), 70),
value ~ U(-0.4, 1), semi-axes ~ 0.2 * Exp(1), centre ~ U(-0.9, 0.9)^2,
rotation ~ U(0, 2 pi), on the square [-1, 1]^2.
"""

from __future__ import annotations

import numpy as np
import odl
import torch
import torch.nn.functional as F

from regbench.core.hashing import stable_seed
from regbench.datasets.images import ImageSet


class EllipsePhantoms(ImageSet):
    def __init__(
        self, split: str, n: int, size: int = 128, seed: int = 0, mean_ellipses: float = 40.0, max_ellipses: int = 70
    ):
        if not (isinstance(n, int) and n > 0):
            raise ValueError(f"EllipsePhantoms n={n!r} is not allowed; allowed: an integer > 0 (images in the split)")
        if not (isinstance(size, int) and size >= 8):
            raise ValueError(
                f"EllipsePhantoms size={size!r} is not allowed; allowed: an integer >= 8 (pixels per side)"
            )
        self.split, self.n, self.size, self.seed = split, n, size, int(seed)
        self.mean_ellipses, self.max_ellipses = float(mean_ellipses), int(max_ellipses)
        self.name = f"ellipses-{split}"

    def ids(self) -> list[str]:
        return [f"{self.split}-{i:05d}" for i in range(self.n)]

    def parameters(self, image_id: str) -> np.ndarray:
        """(k, 6) rows [value, semi-axis 1, semi-axis 2, centre x, centre y, rotation] in ODL's format."""
        rng = np.random.default_rng(stable_seed("ellipses", self.split, image_id, self.seed))
        k = max(1, min(int(rng.poisson(self.mean_ellipses)), self.max_ellipses))
        value = rng.uniform(-0.4, 1.0, k)
        axes = 0.2 * rng.exponential(1.0, (k, 2))
        centre = rng.uniform(-0.9, 0.9, (k, 2))
        rotation = rng.uniform(0.0, 2 * np.pi, k)
        return np.column_stack([value, axes, centre, rotation])

    def render(self, image_id: str, size: int, oversample: int = 1) -> torch.Tensor:
        """(1, size, size) image: the phantom sampled on a grid `oversample` times finer,
        averaged over each pixel, scaled so that the finest grid's maximum is 1."""
        fine = self.render_fine(image_id, size * oversample)
        return F.avg_pool2d(fine.unsqueeze(0), oversample)[0] if oversample > 1 else fine

    def render_fine(self, image_id: str, size: int) -> torch.Tensor:
        space = odl.uniform_discr([-1, -1], [1, 1], (size, size), dtype="float32")
        img = np.asarray(
            odl.core.phantom.ellipsoid_phantom(space, self.parameters(image_id)).asarray(), dtype=np.float32
        )
        img = np.clip(img, 0.0, None)
        peak = float(img.max())
        return torch.from_numpy(img / peak if peak > 0 else img).unsqueeze(0)

    def load(self, image_id: str) -> torch.Tensor:
        return self.render(image_id, self.size, oversample=2)  # pixel averages of a 2x finer sampling
