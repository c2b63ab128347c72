"""Common part of the linear inverse problems on natural images (deblurring, MRI,
super-resolution, inpainting): y = A x + n with white Gaussian noise of std
`sigma` (on the [0, 1] image scale).

Everything random about a measurement (the noise, and a random operator such as
a motion kernel or a sampling mask) is drawn from generators seeded by
(task, split, image id, seed), so every method sees the same data and a rerun
reproduces it. Subclasses say how to build the operator for an image
(`operator`) and what the initializer is (`initializer`, default A^T y).
"""

from __future__ import annotations

import torch
from deepinv.physics import GaussianNoise

from regbench.core.hashing import stable_seed
from regbench.datasets.images import ImageSet
from regbench.datasets.task import Task


class LinearTask(Task):
    kind = "linear"

    def __init__(self, sigma: float, train: ImageSet, calib: ImageSet, test: ImageSet, name: str = "linear"):
        if not sigma >= 0:
            raise ValueError(
                f"task.sigma={sigma!r} is out of range; allowed: a noise std >= 0 on the [0, 1] image scale"
            )
        super().__init__(name=name, train=train, calib=calib, test=test)
        self.sigma = float(sigma)

    def operator(self, x: torch.Tensor, rng: torch.Generator, noise):
        """The deepinv physics (with `noise` as its noise model) for ground truth x."""
        raise NotImplementedError

    def initializer(self, y: torch.Tensor, physics) -> torch.Tensor:
        return physics.A_adjoint(y)

    def initialize(self, y: torch.Tensor, physics) -> torch.Tensor:
        return self.initializer(y, physics)  # what probes call on data they make (noise_model, worst_case)

    def perturbed_operator(self, x: torch.Tensor, physics, rng: torch.Generator, level):
        """A' (clean measurements of x) for operator_mismatch at `level`; rng is seeded as the
        nominal operator's was (same random kernel or mask, then perturbed)."""
        raise ValueError(f"task {self.name} ({type(self).__name__}) has no operator-mismatch model")

    def measure(self, x: torch.Tensor, split: str, image_id: str, seed: int, noise_scale: float = 1.0, mismatch=0):
        """`mismatch` != 0: y = A' x + the same noise realization as the nominal data, where A' is
        `perturbed_operator`; the returned physics (and initializer) are the nominal ones."""
        seed = stable_seed(self.stream, split, image_id, seed)
        operator_rng = torch.Generator(device=x.device).manual_seed(seed)
        noise_rng = torch.Generator(device=x.device).manual_seed(seed ^ 0x5EED)
        noise = GaussianNoise(sigma=self.sigma * noise_scale, rng=noise_rng)
        physics = self.operator(x, operator_rng, noise).to(x.device)
        if mismatch:
            perturbed = self.perturbed_operator(
                x, physics, torch.Generator(device=x.device).manual_seed(seed), mismatch
            )
            y = physics.sensor(physics.noise(perturbed(x)))
        else:
            y = physics(x)
        return y, physics, self.initializer(y, physics)

    def describe(self) -> dict:
        return {**super().describe(), "sigma": self.sigma}
