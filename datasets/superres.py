"""Tasks `sr_*`: x`factor` super-resolution: anti-alias filter, decimation, noise.

deepinv's `Downsampling` (periodic boundary) with its `bicubic` (or `bilinear`, `gaussian`)
filter, or `box` (the mean of each factor x factor block); images are trimmed to a multiple
of the factor. Initializer: bicubic interpolation of y back to the high-resolution grid
(the classical baseline). ||A||^2 depends on the filter
and the image size: it is computed once per size by power iteration and cached.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from deepinv.physics import Downsampling

from regbench.datasets.images import ImageSet
from regbench.datasets.linear_task import LinearTask
from regbench.datasets.task import OperatorFacts

FILTERS = ("bicubic", "bilinear", "gaussian", "box")


class SuperResolutionTask(LinearTask):
    kind = "super-resolution"

    def __init__(
        self,
        sigma: float,
        train: ImageSet,
        calib: ImageSet,
        test: ImageSet,
        factor: int = 2,
        filter: str = "bicubic",
        name: str = "sr",
    ):
        if filter not in FILTERS:
            raise ValueError(f"task.filter={filter!r} is not allowed; allowed: {', '.join(FILTERS)}")
        if not (isinstance(factor, int) and factor >= 2):
            raise ValueError(f"task.factor={factor!r} is not allowed; allowed: an integer >= 2")
        super().__init__(sigma=sigma, train=train, calib=calib, test=test, name=name)
        self.factor, self.filter = factor, filter
        self._sqnorm: dict = {}

    def kernel(self, device):
        if self.filter == "box":  # the mean over each factor x factor block
            return torch.full((1, 1, self.factor, self.factor), 1.0 / self.factor**2, device=device)
        return self.filter

    def image(self, split: str, image_id: str, crop: int | None) -> torch.Tensor:
        """The (cropped) image, trimmed at the bottom/right to a multiple of the factor."""
        x = super().image(split, image_id, crop)
        h, w = x.shape[-2:]
        return x[..., : h - h % self.factor, : w - w % self.factor]

    def operator(self, x: torch.Tensor, rng: torch.Generator, noise):
        physics = Downsampling(
            img_size=tuple(x.shape[1:]),
            filter=self.kernel(x.device),
            factor=self.factor,
            padding="circular",
            device=x.device,
            noise_model=noise,
        )
        key = tuple(x.shape[1:])
        if key not in self._sqnorm:
            with torch.random.fork_rng(
                devices=[]
            ):  # deepinv's power method draws from the global RNG: keep it fixed and untouched
                torch.manual_seed(0)
                self._sqnorm[key] = 1.01 * float(
                    physics.compute_sqnorm(torch.zeros_like(x), max_iter=100, tol=1e-5, verbose=False)
                )
        return physics

    def operator_facts(self, physics, x: torch.Tensor) -> OperatorFacts:
        return OperatorFacts(sqnorm=self._sqnorm[tuple(x.shape[1:])])

    def initializer(self, y: torch.Tensor, physics) -> torch.Tensor:
        return F.interpolate(y, scale_factor=self.factor, mode="bicubic", align_corners=False)

    def describe(self) -> dict:
        return {**super().describe(), "factor": self.factor, "filter": self.filter}
