"""Tasks `mri_*`: single-coil Cartesian MRI of real-valued images.

The ground truth is a real image (a BSD68 grayscale image taken as the magnitude
of an object with zero phase), A = M F: the centred orthonormal 2D FFT followed by
a Cartesian mask of phase-encoding columns (deepinv's `RandomMaskGenerator`:
`acceleration` x fewer columns, the central `center_fraction` fully sampled, the
rest uniformly at random; one mask per image, seeded like the noise). Noise:
complex white Gaussian on the sampled k-space entries, std `sigma` on the real and
on the imaginary part. Since the unknown is real, A maps R^n to C^m and its
adjoint is the real part of the zero-filled inverse FFT: that (the zero-filled
reconstruction) is the initializer. ||A|| = 1 (the sampled centre holds the DC
component of the orthonormal FFT).

Operator mismatch (level l): the scanner samples the phase-encoding columns of the
mask shifted by l lines (torch.roll along the columns, periodic) but files them
under the nominal columns: A' x = roll(M_l F x, -l) with M_l = roll(M, l).
"""

from __future__ import annotations

import torch
from deepinv.physics import MRI, LinearPhysics
from deepinv.physics.generator import RandomMaskGenerator

from regbench.datasets.images import ImageSet
from regbench.datasets.linear_task import LinearTask


class RealImageMRI(MRI):
    """deepinv's MRI restricted to real images: x (B, 1, H, W) -> k-space (B, 2, H, W)."""

    def A(self, x: torch.Tensor, mask=None, **kwargs) -> torch.Tensor:
        if x.shape[1] != 1:
            raise ValueError(f"RealImageMRI expects real images (B, 1, H, W), got {tuple(x.shape)}")
        return super().A(torch.cat([x, torch.zeros_like(x)], dim=1), mask=mask, **kwargs)

    def A_adjoint(self, y: torch.Tensor, mask=None, **kwargs) -> torch.Tensor:
        return super().A_adjoint(y, mask=mask)[:, :1]

    # the SVD-based shortcuts of deepinv's MRI assume complex images: use the generic ones
    def A_adjoint_A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.A_adjoint(self.A(x))

    def A_A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.A(self.A_adjoint(y))

    def A_dagger(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        return LinearPhysics.A_dagger(self, y, **kwargs)

    def prox_l2(self, z, y, gamma, **kwargs):
        return LinearPhysics.prox_l2(self, z, y, gamma, **kwargs)


class MRITask(LinearTask):
    kind = "mri"
    operator_sqnorm = 1.0  # orthonormal FFT and a 0/1 mask holding the DC column
    mismatch = "sampled k-space columns shifted by `level` lines"

    def __init__(
        self,
        sigma: float,
        train: ImageSet,
        calib: ImageSet,
        test: ImageSet,
        acceleration: int = 4,
        center_fraction: float = 0.08,
        name: str = "mri",
    ):
        if not (isinstance(acceleration, int) and acceleration >= 1):
            raise ValueError(f"task.acceleration={acceleration!r} is not allowed; allowed: an integer >= 1")
        if not 0 < center_fraction <= 1.0 / acceleration:
            raise ValueError(
                f"task.center_fraction={center_fraction!r} is not allowed; allowed: in (0, 1/acceleration]"
            )
        super().__init__(sigma=sigma, train=train, calib=calib, test=test, name=name)
        self.acceleration, self.center_fraction = acceleration, float(center_fraction)

    def mask(self, shape, rng: torch.Generator, device) -> torch.Tensor:
        gen = RandomMaskGenerator(
            img_size=(2, *shape),
            acceleration=self.acceleration,
            center_fraction=self.center_fraction,
            rng=rng,
            device=device,
        )
        return gen.step(batch_size=1)["mask"]

    def operator(self, x: torch.Tensor, rng: torch.Generator, noise):
        physics = RealImageMRI(
            mask=self.mask(tuple(x.shape[-2:]), rng, x.device),
            img_size=tuple(x.shape[-2:]),
            device=x.device,
            noise_model=noise,
        )
        return physics

    @staticmethod
    def shifted_mask(mask: torch.Tensor, lines: int) -> torch.Tensor:
        """The columns the scanner actually samples at mismatch level `lines`."""
        return torch.roll(mask, shifts=int(lines), dims=-1)

    def perturbed_operator(self, x, physics, rng, level):
        if not float(level).is_integer():
            raise ValueError(f"task {self.name}: operator_mismatch levels are whole k-space lines, got {level}")
        lines = int(level)
        full = RealImageMRI(mask=torch.ones_like(physics.mask), img_size=tuple(x.shape[-2:]), device=x.device)
        sampled = self.shifted_mask(physics.mask, lines)
        return lambda v: torch.roll(sampled * full.A(v), shifts=-lines, dims=-1)

    def describe(self) -> dict:
        return {**super().describe(), "acceleration": self.acceleration, "center_fraction": self.center_fraction}
