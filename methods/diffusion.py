"""Diffusion priors: deepinv's DiffPIR and DPS samplers around a denoiser trained by regbench.

Both samplers need a denoiser D(x, s) for every noise level of the diffusion,
from s ~ 80 (VP schedule with 1000 training steps: pure noise) down to
s ~ 0.005 on the [0, 1] image scale. The prior is `denoisers.Preconditioned`
(EDM preconditioning around a deepinv DRUNet) trained on BSD400 patches with
log-normal noise levels centred on 0.1 (about 90% of them between 0.01 and 1)
and EDM's loss weighting; the preconditioning makes D tend to the data mean at
the large levels only the first few steps visit.

Samplers are stochastic: `reconstruct` draws with `options.seed` (default 0)
in a forked RNG (the caller's random state is left as it was), the runner
evaluates each test image once per seed of the method's `reconstruct.<profile>.seeds`,
`options.method["steps"]` is the number of sampler steps of the profile and `options.method["bf16"]`
runs the denoiser's network in bfloat16.

- DiffPIR (Zhu et al. 2023): HQS-like; each step denoises, takes the exact
  data prox with weight rho_t = lam sigma_n^2 / sigma_t^2, and re-noises with a
  fraction `zeta` of fresh noise. `lam` and `zeta` are calibrated per task.
  `options.method["start"]`: `noise` runs deepinv's sampler, the whole schedule from pure
  noise; `measurement` (denoising tasks only; others run `noise`) starts the reverse
  diffusion at the step t* whose noise level is the measurement's, where y itself
  is a sample of the forward process, so every step is spent below sigma_y.
  deepinv's sampler cannot start late, so that loop is written here with its
  schedule, denoiser convention and data prox.
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

from regbench.methods.base import Hyper, Method, SolveReport, noise_level, operator_of
from regbench.methods.denoisers import precision


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

    def reconstruct(self, y, physics, x0, hyper, options) -> tuple[torch.Tensor, SolveReport]:
        steps, seed = int(options.method.get("steps", self.default_steps)), int(options.seed)
        if steps < 2:
            raise ValueError(f"{type(self).__name__}: steps={steps}; a sampler needs at least 2 steps")
        with precision(self.denoiser, options.method.get("bf16", False)):
            x = self.sample(y, physics, x0, steps, seed, hyper, options)
        return x, SolveReport(iterations=steps, seed=seed)

    def sample(self, y, physics, x0, steps: int, seed: int, hyper, options) -> torch.Tensor:
        raise NotImplementedError


class DiffPIR(DiffusionPrior):
    hyperparameters = {
        # rho_t = lam sigma_n^2 / sigma_t^2 (the paper: 3..25); searched in [0.3, 30]
        "lam": Hyper(3.0, span=10.0, calibrate=True),
        # share of fresh noise per step; searched in [0.1, 1] (on denoising, 1 did best with a
        # briefly trained prior: smaller values re-inject the measurement noise through eps)
        "zeta": Hyper(1.0, span=10.0, calibrate=True, bounds=(0.01, 1.0)),
    }

    starts = ("noise", "measurement")

    @torch.no_grad()
    def sample(self, y, physics, x0, steps, seed, hyper, options):
        start = options.method.get("start", "noise")
        if start not in self.starts:
            raise ValueError(f"DiffPIR: start={start!r}; expected one of {', '.join(self.starts)}")
        sampler = DeepinvDiffPIR(
            self.denoiser,
            data_fidelity=L2(),
            sigma=noise_level(physics),
            max_iter=steps,
            zeta=hyper["zeta"],
            lambda_=hyper["lam"],
            device=y.device,
        )
        with seeded(seed, y.device):
            if start == "measurement" and operator_of(options, physics).identity:
                return self.sample_from_measurement(sampler, y, physics, steps, hyper["lam"])
            return sampler(y, physics, x_init=x0)

    def sample_from_measurement(self, sampler: DeepinvDiffPIR, y, physics, steps: int, lam: float) -> torch.Tensor:
        """DiffPIR's steps on the timesteps from t* down to 0 (evenly spaced), in deepinv's
        [-1, 1] scaling: x_t* = sqrt(abar_t*) (2y - 1 + the noise the schedule has beyond y's)."""
        sigma_y, zeta = sampler.sigma, sampler.zeta
        levels = sampler.reduced_alpha_cumprod  # noise std of x_t / sqrt(abar_t), [-1, 1] scale
        t_star = int((levels - 2 * sigma_y).abs().argmin())
        ts = torch.linspace(t_star, 0, steps).round().long().tolist()
        a, b = sampler.sqrt_alphas_cumprod, sampler.sqrt_1m_alphas_cumprod
        extra = float(levels[t_star] ** 2 - 4 * sigma_y**2)
        x = a[t_star] * (2 * y - 1 + max(extra, 0.0) ** 0.5 * torch.randn_like(y))
        for i, t in enumerate(ts):
            x0 = (2 * sampler.model(x / (2 * a[t]) + 0.5, float(levels[t]) / 2) - 1).clamp(-1, 1)
            if i == len(ts) - 1:
                return x0 / 2 + 0.5
            rho = lam * sigma_y**2 / float(levels[t]) ** 2
            x0 = 2 * sampler.data_fidelity.prox(x0 / 2 + 0.5, y, physics, gamma=1.0 / (2 * rho)) - 1
            eps = (x - a[t] * x0) / b[t]
            s = ts[i + 1]
            x = a[s] * x0 + b[s] * ((1 - zeta) ** 0.5 * eps + zeta**0.5 * torch.randn_like(x))


class DPS(DiffusionPrior):
    hyperparameters = {"weight": Hyper(1.0, span=10.0, calibrate=True)}

    def __init__(self, denoiser: torch.nn.Module, guidance: str = "annealed", solver: str = "ddpm", **hyper: float):
        super().__init__(denoiser, **hyper)
        self.guidance, self.solver_name = guidance, solver

    def sample(self, y, physics, x0, steps, seed, hyper, options):
        sampler = DeepinvDPS(
            self.denoiser,
            solver=self.solver_name,
            num_steps=steps,
            weight=hyper["weight"],
            guidance=self.guidance,
            device=y.device,
            rng=torch.Generator(device=y.device),
        )
        return sampler(y, physics, seed=seed).to(y.dtype).detach()
