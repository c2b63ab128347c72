"""Tasks `inpaint_*`: a random fraction of the pixels is missing, the rest is noisy.

Each image gets its own Bernoulli mask (kept with probability 1 - `missing`),
drawn from a generator seeded by task, split, image id and seed (deepinv's
`Inpainting` with a float mask uses its `BernoulliSplittingMaskGenerator`).
||A|| = 1. Initializer: A^T y, the observed pixels with zeros where missing.
"""
from __future__ import annotations

import torch
from deepinv.physics import Inpainting

from regbench_datasets.images import ImageSet
from regbench_datasets.linear_task import LinearTask


class InpaintingTask(LinearTask):
    kind = "inpainting"

    def __init__(self, missing: float, sigma: float, train: ImageSet, calib: ImageSet, test: ImageSet, name: str = "inpaint"):
        if not 0 <= missing < 1:
            raise ValueError(f"task.missing={missing!r} is not allowed; allowed: a fraction of missing pixels in [0, 1)")
        super().__init__(sigma=sigma, train=train, calib=calib, test=test, name=name)
        self.missing = float(missing)

    def operator(self, x: torch.Tensor, rng: torch.Generator, noise):
        physics = Inpainting(img_size=tuple(x.shape[1:]), mask=1.0 - self.missing, device=x.device, rng=rng, noise_model=noise)
        physics.data_lipschitz = 1.0  # a 0/1 mask
        return physics

    def describe(self) -> dict:
        return {**super().describe(), "missing": self.missing}
