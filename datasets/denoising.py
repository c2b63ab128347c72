"""Task `denoise_*`: additive white Gaussian noise on natural images.

The noise of each image is fixed by (task, split, image id, seed) (the task's `stream`,
its name by default), so every method sees exactly the same measurements; the initializer is y itself (A^T y).
"""

from __future__ import annotations

import deepinv as dinv
import torch

from regbench.core.hashing import stable_seed
from regbench.datasets.images import ImageSet
from regbench.datasets.task import Task


class DenoisingTask(Task):
    kind = "denoising"
    identity_operator = True
    operator_sqnorm = 1.0

    def __init__(
        self,
        sigma: float,
        train: ImageSet,
        calib: ImageSet,
        test: ImageSet,
        name: str = "denoise",
        stream: str | None = None,
    ):
        if not sigma > 0:
            raise ValueError(f"task.sigma={sigma!r} is out of range; allowed: a noise level > 0 on the 0-255 scale")
        super().__init__(name=name, train=train, calib=calib, test=test, stream=stream)
        self.sigma = float(sigma) / 255.0

    def physics(self, seed: int, device, noise_scale: float = 1.0) -> dinv.physics.Physics:
        rng = torch.Generator(device=device).manual_seed(seed)
        physics = dinv.physics.Denoising(
            dinv.physics.GaussianNoise(sigma=self.sigma * noise_scale, rng=rng), device=device
        ).to(device)
        return physics

    def measure(self, x: torch.Tensor, split: str, image_id: str, seed: int, noise_scale: float = 1.0):
        noise_seed = stable_seed(self.stream, split, image_id, seed)
        physics = self.physics(noise_seed, x.device, noise_scale)
        y = physics(x)
        return y, physics, self.initialize(y, physics)

    def describe(self) -> dict:
        return {**super().describe(), "sigma": self.sigma * 255.0}
