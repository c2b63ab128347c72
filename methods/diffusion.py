"""Diffusion priors: deepinv's DiffPIR and DPS samplers around a denoiser trained by regbench.

Both samplers need a denoiser D(x, s) for every noise level of the diffusion,
from s ~ 80 (VP schedule with 1000 training steps: pure noise) down to
s ~ 0.005 on the [0, 1] image scale. The prior is `denoisers.Preconditioned`
(EDM preconditioning around a deepinv DRUNet) trained on BSD400 patches with
log-normal noise levels centred on 0.1 (about 90% of them between 0.01 and 1)
and EDM's loss weighting; the preconditioning makes D tend to the data mean at
the large levels only the first few steps visit.

Samplers are stochastic: `reconstruct` draws with `solver["seed"]` (default 0)
in a forked RNG (the caller's random state is left as it was), the runner
evaluates each test image once per seed of the method's `reconstruct.<profile>.seeds`,
`solver["steps"]` is the number of sampler steps of the profile and `solver["bf16"]`
runs the denoiser's network in bfloat16.

- DiffPIR (Zhu et al. 2023): HQS-like; each step denoises, takes the exact
  data prox with weight rho_t = lam sigma_n^2 / sigma_t^2, and re-noises with a
  fraction `zeta` of fresh noise. `lam` and `zeta` are calibrated per task.
- DPS (Chung et al. 2023): ancestral (DDPM) sampling of the VP SDE with the
  likelihood gradient through the denoiser; `guidance: annealed` (the Gaussian
  likelihood with variance sigma_y^2 + sigma_t^2) puts `weight` near 1 for any
  noise level; `weight` is calibrated per task.
"""
from __future__ import annotations

import contextlib

import torch
from deepinv.optim.data_fidelity import L2
from deepinv.sampling import DPS as DeepinvDPS
from deepinv.sampling import DiffPIR as DeepinvDiffPIR

from regbench_methods.base import Hyper, Method, noise_level
from regbench_methods.denoisers import precision, train_denoiser


@contextlib.contextmanager
def seeded(seed: int, device: torch.device):
    """Draw from torch's global RNG with `seed`, restoring the caller's RNG state afterwards."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


class DiffusionPrior(Method):
    family = "sampler"
    stochastic = True
    trainable = True
    default_steps = 20  # when the caller gives no `steps` (the profiles do)

    def __init__(self, denoiser: torch.nn.Module, **hyper: float):
        super().__init__(**hyper)
        self.denoiser = denoiser

    def fit(self, patches, budget: dict, progress: bool = True) -> dict:
        return train_denoiser(self.denoiser, patches, budget, progress, desc=f"{type(self).__name__.lower()} prior")

    def reconstruct(self, y, physics, x0, solver: dict) -> tuple[torch.Tensor, dict]:
        steps, seed = int(solver.get("steps", self.default_steps)), int(solver.get("seed", 0))
        if steps < 2:
            raise ValueError(f"{type(self).__name__}: steps={steps}; a sampler needs at least 2 steps")
        with precision(self.denoiser, solver.get("bf16", False)):
            x = self.sample(y, physics, x0, steps, seed)
        return x, {"iterations": steps, "seed": seed}

    def sample(self, y, physics, x0, steps: int, seed: int) -> torch.Tensor:
        raise NotImplementedError


class DiffPIR(DiffusionPrior):
    hyperparameters = {
        # rho_t = lam sigma_n^2 / sigma_t^2 (the paper: 3..25); searched in [0.3, 30]
        "lam": Hyper(3.0, span=10.0, calibrate=True),
        # share of fresh noise per step; searched in [0.1, 1] (on denoising, 1 did best with a
        # briefly trained prior: smaller values re-inject the measurement noise through eps)
        "zeta": Hyper(1.0, span=10.0, calibrate=True, bounds=(0.01, 1.0)),
    }

    @torch.no_grad()
    def sample(self, y, physics, x0, steps, seed):
        sampler = DeepinvDiffPIR(self.denoiser, data_fidelity=L2(), sigma=noise_level(physics), max_iter=steps,
                                 zeta=self.hp["zeta"], lambda_=self.hp["lam"], device=y.device)
        with seeded(seed, y.device):
            return sampler(y, physics, x_init=x0)


class DPS(DiffusionPrior):
    hyperparameters = {"weight": Hyper(1.0, span=10.0, calibrate=True)}

    def __init__(self, denoiser: torch.nn.Module, guidance: str = "annealed", solver: str = "ddpm", **hyper: float):
        super().__init__(denoiser, **hyper)
        self.guidance, self.solver_name = guidance, solver

    def sample(self, y, physics, x0, steps, seed):
        sampler = DeepinvDPS(self.denoiser, solver=self.solver_name, num_steps=steps, weight=self.hp["weight"],
                             guidance=self.guidance, device=y.device, rng=torch.Generator(device=y.device))
        return sampler(y, physics, seed=seed).to(y.dtype).detach()
