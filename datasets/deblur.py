"""Tasks `deblur_*`: circular convolution with a blur kernel, then white Gaussian noise.

The kernel comes from a deepinv PSF generator given (partially) in the task config,
e.g. `MotionBlurGenerator` (a family: one random kernel per image, drawn from a
generator seeded by task, split, image id and seed) or `GaussianBlurGenerator`
with sigma_min = sigma_max (one fixed kernel). Kernels are non-negative and sum
to one, so ||A|| = 1 (the gain at frequency 0), which is the data term's
Lipschitz constant. The operator is deepinv's `BlurFFT` (periodic boundary,
exact adjoint). Initializer: the blurred noisy image y itself.

Operator mismatch (level l): the data are blurred by the kernel drawn with the same
random state and its width times (1 + 0.2 l): the std of a Gaussian generator
(`sigma_min`/`sigma_max`), the trajectory spread `sigma` of a motion generator.
"""

from __future__ import annotations

import functools
from typing import Callable

import torch
from deepinv.physics import BlurFFT

from regbench.datasets.images import ImageSet
from regbench.datasets.linear_task import LinearTask

WIDTH_KEYS = {"GaussianBlurGenerator": ("sigma_min", "sigma_max"), "MotionBlurGenerator": ("sigma",)}


class DeblurTask(LinearTask):
    kind = "deblurring"
    operator_sqnorm = 1.0  # non-negative kernel summing to one: ||A|| = its DC gain = 1
    mismatch = "kernel width x (1 + 0.2 level)"
    width_step = 0.2

    def __init__(
        self, kernels: Callable, sigma: float, train: ImageSet, calib: ImageSet, test: ImageSet, name: str = "deblur"
    ):
        super().__init__(sigma=sigma, train=train, calib=calib, test=test, name=name)
        if not callable(kernels):
            raise ValueError(
                f"task.spec.kernels={kernels!r} is not allowed; allowed: a deepinv PSF generator "
                "config with _partial_: true"
            )
        self.kernels = kernels

    def kernel(self, rng: torch.Generator, device, width: float = 1.0) -> torch.Tensor:
        """The image's kernel; `width` scales the generator's width parameters (operator mismatch)."""
        make = self.kernels
        if width != 1.0:
            name = getattr(getattr(make, "func", make), "__name__", type(make).__name__)
            if name not in WIDTH_KEYS or not isinstance(make, functools.partial):
                raise ValueError(
                    f"task {self.name}: operator mismatch scales the kernel width of "
                    f"{', '.join(WIDTH_KEYS)} only, not {name}"
                )
            widths = {k: self._scaled(make.keywords[k], width) for k in WIDTH_KEYS[name] if k in make.keywords}
            make = functools.partial(make, **widths)
        psf = make(rng=rng, device=device).step(batch_size=1)["filter"]
        return psf / psf.sum(dim=(-2, -1), keepdim=True)

    @staticmethod
    def _scaled(value, factor: float):
        return type(value)(v * factor for v in value) if isinstance(value, (tuple, list)) else value * factor

    def perturbed_operator(self, x, physics, rng, level):
        factor = 1.0 + self.width_step * level
        if factor <= 0:
            raise ValueError(
                f"task {self.name}: operator_mismatch level {level} makes the kernel width {factor:g} x nominal"
            )
        return BlurFFT(img_size=tuple(x.shape[1:]), filter=self.kernel(rng, x.device, factor), device=x.device).A

    def operator(self, x: torch.Tensor, rng: torch.Generator, noise):
        physics = BlurFFT(
            img_size=tuple(x.shape[1:]), filter=self.kernel(rng, x.device), device=x.device, noise_model=noise
        )
        return physics

    def initializer(self, y: torch.Tensor, physics) -> torch.Tensor:
        return y
