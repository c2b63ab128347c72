"""What every task is: data splits, a physics with its noise, an initializer.

`samples(split, ...)` yields the ground truth, its measurement, the physics that
produced it and the initializer, for the first `n` images of a split (center
cropped when the profile asks for small images). Subclasses define `measure`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional

import torch

from regbench.datasets.images import ImageSet, center_crop

SPLITS = ("train", "calib", "test")  # a task's own data; anything else (probe `ood`) is foreign


@dataclass(frozen=True)
class OperatorFacts:
    """What a solver may know about a task's forward operator, stated by the task."""

    identity: bool = False  # A = I (denoising): the energy is strongly convex
    sqnorm: Optional[float] = None  # ||A||^2, the Lipschitz constant of the L2 fidelity's gradient; None: unknown

    @classmethod
    def of(cls, physics) -> "OperatorFacts":
        """Facts of a bare deepinv physics handed over without a task: identity when it is plain
        denoising, the norm unknown (the solver estimates it)."""
        from deepinv.physics import Denoising

        return cls(identity=type(physics) is Denoising, sqnorm=1.0 if type(physics) is Denoising else None)


@dataclass
class Sample:
    image_id: str
    x: torch.Tensor  # ground truth (1, C, H, W)
    y: torch.Tensor  # measurement
    physics: object  # deepinv Physics that made y (operator + noise)
    x0: torch.Tensor  # initializer
    max_pixel: float | None = 1.0  # metric data range: [0, max_pixel]; None: each ground truth's own [min, max]
    meta: dict = field(default_factory=dict)  # what a probe made the sample with (e.g. worst_case's delta)
    operator: OperatorFacts = OperatorFacts()  # facts of `physics` the task states (norm, identity)


class Task:
    kind = "task"
    max_pixel: float | None = 1.0  # PSNR/SSIM data range (None: each ground truth's range, as CT studies do)
    adaptation = "refit"  # methods trained elsewhere (on denoising) keep their weights; lambda etc. are re-fitted here
    # what the operator_mismatch probe perturbs at level l (None: no mismatch model). Tasks that have one
    # accept `measure(..., mismatch=l)`: data from the perturbed operator, the nominal physics returned.
    mismatch: str | None = None
    identity_operator = False  # A = I
    operator_sqnorm: float | None = None  # ||A||^2 when the task knows it (None: estimated by power iteration)

    def __init__(self, name: str, train: ImageSet, calib: ImageSet, test: ImageSet, stream: str | None = None):
        self.name, self.train, self.calib, self.test = name, train, calib, test
        # the label every sample's noise (and random operator) is drawn from: the task's name, unless it
        # poses another task's problem on other test images (denoise_folder: denoise_bsd68's), so that
        # its calibration samples, and with them its calibration, are the other task's
        self.stream = stream or name

    def split(self, split: str) -> ImageSet:
        if split not in SPLITS:
            raise ValueError(f"split={split!r}; allowed: {', '.join(SPLITS)}")
        return getattr(self, split)

    def measure(self, x: torch.Tensor, split: str, image_id: str, seed: int, noise_scale: float = 1.0):
        """(y, physics, initializer) for ground truth x; noise_scale multiplies the noise level."""
        raise NotImplementedError

    def initialize(self, y: torch.Tensor, physics) -> torch.Tensor:
        """The initializer the methods start from (A^T y by default; tasks override: FBP, zero-filling)."""
        return physics.A_adjoint(y)

    def samples(
        self, split: str, n: int | None, crop: int | None, seed: int, device, noise_scale: float = 1.0
    ) -> Iterator[Sample]:
        images = self.split(split)
        for image_id in images.ids()[:n] if n else images.ids():
            x = self.image(split, image_id, crop).unsqueeze(0).to(device)
            y, physics, x0 = self.measure(x, split, image_id, seed, noise_scale)
            yield self.sample(image_id, x, y, physics, x0)

    def sample(self, image_id: str, x: torch.Tensor, y: torch.Tensor, physics, x0: torch.Tensor) -> Sample:
        """A sample of this task: its data range and operator facts attached."""
        return Sample(image_id, x, y, physics, x0, self.max_pixel, operator=self.operator_facts(physics, x))

    def operator_facts(self, physics, x: torch.Tensor) -> OperatorFacts:
        """The facts of the operator that measured x (tasks whose norm depends on the image size override)."""
        return OperatorFacts(identity=self.identity_operator, sqnorm=self.operator_sqnorm)

    def image(self, split: str, image_id: str, crop: int | None) -> torch.Tensor:
        """The ground truth (C, H, W) at the profile's size; tasks whose data is rendered (CT phantoms)
        override this."""
        return center_crop(self.split(split).load(image_id), crop)

    def foreign_image(self, x: torch.Tensor, crop: int | None) -> torch.Tensor:
        """An image from another set (probe `ood`) made fit for this task: centre-cropped to the
        profile's crop (tasks with a fixed grid, CT, override this)."""
        return center_crop(x, min(crop, *x.shape[-2:]) if crop else None)

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "train": self.train.name,
            "calib": self.calib.name,
            "test": self.test.name,
            "adaptation": self.adaptation,
            "data_range": "ground truth" if self.max_pixel is None else [0, self.max_pixel],
        }
