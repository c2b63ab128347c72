"""Tasks `deblur_*`: circular convolution with a blur kernel, then white Gaussian noise.

The kernel comes from a deepinv PSF generator given (partially) in the task config,
e.g. `MotionBlurGenerator` (a family: one random kernel per image, drawn from a
generator seeded by task, split, image id and seed) or `GaussianBlurGenerator`
with sigma_min = sigma_max (one fixed kernel). Kernels are non-negative and sum
to one, so ||A|| = 1 (the gain at frequency 0), which is the data term's
Lipschitz constant. The operator is deepinv's `BlurFFT` (periodic boundary,
exact adjoint). Initializer: the blurred noisy image y itself.
"""
from __future__ import annotations

from typing import Callable

import torch
from deepinv.physics import BlurFFT

from regbench_datasets.images import ImageSet
from regbench_datasets.linear_task import LinearTask


class DeblurTask(LinearTask):
    kind = "deblurring"

    def __init__(self, kernels: Callable, sigma: float, train: ImageSet, calib: ImageSet, test: ImageSet, name: str = "deblur"):
        super().__init__(sigma=sigma, train=train, calib=calib, test=test, name=name)
        if not callable(kernels):
            raise ValueError(f"task.spec.kernels={kernels!r} is not allowed; allowed: a deepinv PSF generator config with _partial_: true")
        self.kernels = kernels

    def kernel(self, rng: torch.Generator, device) -> torch.Tensor:
        psf = self.kernels(rng=rng, device=device).step(batch_size=1)["filter"]
        return psf / psf.sum(dim=(-2, -1), keepdim=True)

    def operator(self, x: torch.Tensor, rng: torch.Generator, noise):
        physics = BlurFFT(img_size=tuple(x.shape[1:]), filter=self.kernel(rng, x.device), device=x.device, noise_model=noise)
        physics.data_lipschitz = 1.0  # non-negative kernel summing to one: ||A|| = its DC gain = 1
        return physics

    def initializer(self, y: torch.Tensor, physics) -> torch.Tensor:
        return y
