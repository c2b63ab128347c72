"""Probes on the noise: its level (noise_sweep, noise_decay) and its model (noise_model)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Iterator

import torch

from regbench.core.hashing import stable_seed
from regbench.datasets.task import Sample, Task
from regbench.evaluation.reconstruct import Reconstruction
from regbench.probes.base import Probe


class NoiseSweep(Probe):
    """Level l: the measurement noise std times 2**l (l = -1, 1, 2: x0.5, x2, x4)."""

    def label(self, level) -> str:
        return f"noise x{2.0**level:g}"

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
            raise ValueError(
                f"noise_model levels {bad} are not allowed; allowed: 0 (nominal), "
                + ", ".join(f"{k} ({v})" for k, v in self.MODELS.items())
            )
        if not (poisson_scale >= 0 and 0 <= salt_pepper <= 1):
            raise ValueError(
                f"noise_model: poisson_scale={poisson_scale} must be >= 0 and salt_pepper={salt_pepper} in [0, 1]"
            )
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
            yield replace(s, y=y, x0=task.initialize(y, s.physics))


class NoiseDecay(Probe):
    """Level l: noise std times 2**-l, the calibrated parameters moved by the method's parameter-choice rule
    (`Hyper.noise_power` p: value x (2**-l)**p; the variational lambda ~ sigma, DEAL's mask sigma ~ sigma;
    PnP and the samplers read the noise level from the physics). The convergent-regularization check: the
    error should go to 0 with the noise. Rows carry the values used (`hyper_used`)."""

    def __init__(self, levels=(0, 1, 2, 3)):
        super().__init__(levels)

    def label(self, level) -> str:
        return f"noise x{2.0**-level:g}, rule"

    def samples(self, task: Task, level, n, crop, seed: int, device) -> Iterator[Sample]:
        return task.samples("test", n, crop, seed, device, noise_scale=2.0**-level)

    def solving(self, recon: Reconstruction, level) -> tuple[Reconstruction, dict]:
        powers = {k: h.noise_power for k, h in recon.method.hyperparameters.items() if h.noise_power}
        hyper = {k: v * (2.0**-level) ** powers[k] if k in powers else v for k, v in recon.hyper.items()}
        return recon.replace(hyper=hyper), {"hyper_used": json.dumps(hyper, sort_keys=True)}
