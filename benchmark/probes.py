"""Stability probes: a named family of perturbations with a level; level 0 is the nominal task.

A probe turns (task, level) into test samples, and may add columns to each row
(`extra`). Methods keep the calibration they got on the nominal task, so a probe
measures how a method degrades, not how well it could be re-tuned. `label(level)`
names what a level is (rows carry it as `variant`).
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

from benchmark.hashing import stable_seed
from regbench_datasets.images import ImageSet, center_crop
from regbench_datasets.task import Sample, Task


class Probe:
    """The task as defined (level 0 only)."""

    def __init__(self, levels=(0,)):
        levels = [float(v) if not float(v).is_integer() else int(v) for v in levels]
        if not levels or levels[0] != 0:
            raise ValueError(f"probe.levels={levels!r} is not allowed; allowed: a list starting with level 0 (the nominal task)")
        self.levels = levels

    def label(self, level) -> str:
        return "nominal" if level == 0 else f"level {level}"

    def samples(self, task: Task, level, n, crop, seed: int, device) -> Iterator[Sample]:
        return task.samples("test", n, crop, seed, device)

    def extra(self, method, task: Task, sample: Sample, x_hat: torch.Tensor, solver: dict, seed: int, reconstruct) -> dict:
        """Columns this probe adds to a row (none by default)."""
        return {}


class NoiseSweep(Probe):
    """Level l: the measurement noise std times 2**l (l = -1, 1, 2: x0.5, x2, x4)."""

    def label(self, level) -> str:
        return f"noise x{2.0 ** level:g}"

    def samples(self, task: Task, level, n, crop, seed: int, device) -> Iterator[Sample]:
        return task.samples("test", n, crop, seed, device, noise_scale=2.0**level)


def _nominal_sigma(physics) -> float:
    sigma = getattr(getattr(physics, "noise_model", None), "sigma", None)
    if sigma is None:
        raise ValueError("the noise_model probe needs a task whose physics has Gaussian noise (noise_model.sigma)")
    return float(torch.as_tensor(sigma).flatten()[0])


class NoiseModel(Probe):
    """Data from another noise model than the Gaussian one the methods were calibrated for.

    1 poisson_gaussian: the nominal Gaussian plus a signal-dependent part with std
      `poisson_scale` * sqrt(Ax) (0.02 as in the stability benchmark of Denker et al.);
    2 salt_pepper: the nominal Gaussian, then a fraction `salt_pepper` of the
      measurements set to the min or max of Ax;
    3 uniform: uniform noise with the nominal std (sqrt(3) sigma half-width).
    """

    MODELS = {1: "poisson_gaussian", 2: "salt_pepper", 3: "uniform"}

    def __init__(self, levels=(0, 1, 2, 3), poisson_scale: float = 0.02, salt_pepper: float = 0.05):
        super().__init__(levels)
        bad = [lv for lv in self.levels if lv != 0 and lv not in self.MODELS]
        if bad:
            raise ValueError(f"noise_model levels {bad} are not allowed; allowed: 0 (nominal), " +
                             ", ".join(f"{k} ({v})" for k, v in self.MODELS.items()))
        if not (poisson_scale >= 0 and 0 <= salt_pepper <= 1):
            raise ValueError(f"noise_model: poisson_scale={poisson_scale} must be >= 0 and salt_pepper={salt_pepper} in [0, 1]")
        self.poisson_scale, self.salt_pepper = float(poisson_scale), float(salt_pepper)

    def label(self, level) -> str:
        return "nominal" if level == 0 else self.MODELS[level]

    def noisy(self, clean: torch.Tensor, sigma: float, level, g: torch.Generator) -> torch.Tensor:
        def randn():
            return torch.randn(clean.shape, generator=g, dtype=clean.dtype).to(clean.device)

        if level == 1:
            return clean + sigma * randn() + self.poisson_scale * clean.clamp_min(0).sqrt() * randn()
        if level == 2:
            y = clean + sigma * randn()
            u = torch.rand(clean.shape, generator=g, dtype=clean.dtype).to(clean.device)
            lo, hi = clean.min(), clean.max()
            y = torch.where(u < self.salt_pepper / 2, lo, y)
            return torch.where(u > 1 - self.salt_pepper / 2, hi, y)
        half = math.sqrt(3.0) * sigma
        return clean + (2 * torch.rand(clean.shape, generator=g, dtype=clean.dtype).to(clean.device) - 1) * half

    def samples(self, task: Task, level, n, crop, seed: int, device) -> Iterator[Sample]:
        for s in task.samples("test", n, crop, seed, device):
            if level == 0:
                yield s
                continue
            g = torch.Generator().manual_seed(stable_seed("noise_model", task.name, s.image_id, seed, level))
            y = self.noisy(s.physics.A(s.x), _nominal_sigma(s.physics), level, g)
            yield Sample(s.image_id, s.x, y, s.physics, task.initialize(y, s.physics))


class OutOfDistribution(Probe):
    """Test images from other distributions than the training data; level l uses `sets[l-1]`.

    The task's own operator and noise are applied to them; calibration stays the
    nominal one. Defaults: 1 = scikit-image's bundled images (text, textures,
    microscopy, astronomy), 2 = phantoms.
    """

    def __init__(self, sets: list, levels=None):
        if not sets:
            raise ValueError("ood: sets must name at least one image set")
        self.sets: list[ImageSet] = list(sets)
        super().__init__(levels if levels is not None else range(len(self.sets) + 1))
        if any(not float(lv).is_integer() or not 0 <= lv <= len(self.sets) for lv in self.levels):
            raise ValueError(f"ood levels {self.levels} must be integers in 0..{len(self.sets)} (one per image set)")

    def label(self, level) -> str:
        return "nominal" if level == 0 else self.sets[level - 1].name

    def samples(self, task: Task, level, n, crop, seed: int, device) -> Iterator[Sample]:
        if level == 0:
            yield from task.samples("test", n, crop, seed, device)
            return
        images = self.sets[level - 1]
        for image_id in images.ids()[:n] if n else images.ids():
            x = images.load(image_id)
            x = center_crop(x, min(crop, *x.shape[-2:]) if crop else None).unsqueeze(0).to(device)
            y, physics, x0 = task.measure(x, "ood", f"{images.name}/{image_id}", seed)
            yield Sample(f"{images.name}/{image_id}", x, y, physics, x0)


class Sensitivity(Probe):
    """Per-pixel std of the reconstruction over K noise realizations of the same image.

    Adds `sensitivity_std` (mean over pixels of the per-pixel std) and
    `sensitivity_max` to each row; the row's PSNR is that of the first realization.
    """

    def __init__(self, realizations: int = 8, levels=(0,)):
        super().__init__(levels)
        if int(realizations) < 2:
            raise ValueError(f"sensitivity.realizations={realizations} is not allowed; allowed: an integer >= 2")
        self.realizations = int(realizations)

    def label(self, level) -> str:
        return f"{self.realizations} noise realizations"

    def extra(self, method, task: Task, sample: Sample, x_hat, solver: dict, seed: int, reconstruct) -> dict:
        stack = [x_hat]
        for k in range(1, self.realizations):
            y, physics, x0 = task.measure(sample.x, "test", sample.image_id, stable_seed("sensitivity", seed, k))
            x_k, _ = reconstruct(Sample(sample.image_id, sample.x, y, physics, x0))
            if x_k is not None:  # a failed realization is left out (and the count says so)
                stack.append(x_k)
        std = torch.stack(stack).std(dim=0)
        return {"sensitivity_std": float(std.mean()), "sensitivity_max": float(std.max()), "realizations": len(stack)}
