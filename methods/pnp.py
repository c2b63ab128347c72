"""Plug-and-Play: a Gaussian denoiser trained by regbench inside deepinv's HQS iterations.

    u_k     = prox_{gamma_k f}(x_k)            f = 1/2 ||A x - y||^2 (deepinv L2)
    x_{k+1} = D(u_k, sigma_k)                  the denoiser as the prior's prox

with the DPIR schedule (Zhang et al. 2021): sigma_k decreases geometrically from
`sigma_start` (DPIR: 49/255) to `strength` x the measurement noise level over
`iterations` steps, and gamma_k = sigma_k^2 / (lam sigma_n^2) (DPIR: lam = 0.23).
All four are calibrated per task: DPIR's published values suit a DRUNet trained
for days; with the cpu-profile denoiser they fail on Gaussian deblurring (the
first data step, gamma_0 = 1600, amplifies the noise where the blur's spectrum
is small into a pattern the denoiser keeps: 20 dB from a 23.6 dB initializer on
the calibration crops; 26.4 dB with lam = 1, 26.1 dB with sigma_start = 0.03).

Why HQS and not PGD/ADMM: with an exact
data prox (closed form for denoising, inpainting, super-resolution and
deblurring, CG otherwise) HQS with a decreasing schedule reaches its best
result in ~8 iterations, where PGD needs a step size below 1/||A||^2 and
hundreds of denoiser calls; PnP-HQS is also the scheme DRUNet was published
with. With one iteration, on denoising, it is the denoiser applied once at
`strength` x sigma_n: calibrating `iterations` lets each task pick.

The denoiser (`regbench.methods.denoisers.Preconditioned` around a deepinv
DRUNet) is trained on BSD400 patches over a range of noise levels (training scheme `denoiser_mse`).
"""

from __future__ import annotations

import torch
from deepinv.optim import HQS
from deepinv.optim.data_fidelity import L2
from deepinv.optim.prior import PnP as PnPPrior

from regbench.methods.base import Hyper, Method, SolveReport, noise_level
from regbench.methods.denoisers import precision

NOISE_FLOOR = 0.01  # DPIR's floor on sigma_n: noiseless tasks still get a finite schedule


def dpir_schedule(iterations: int, sigma_end: float, sigma_start: float) -> torch.Tensor:
    """Geometric denoiser levels from sigma_start down to sigma_end (just sigma_end for one iteration)."""
    start = max(sigma_start, sigma_end)
    if iterations == 1:
        return torch.tensor([sigma_end])
    return torch.logspace(torch.log10(torch.tensor(start)), torch.log10(torch.tensor(sigma_end)), iterations)


class PnP(Method):
    family = "denoiser"
    trainable = True
    # calibrated in this order (coordinate-wise, each kept only where it improves): strength and
    # iterations first, from DPIR's lam and sigma_start, then those two
    hyperparameters = {
        "strength": Hyper(1.0, span=3.0, calibrate=True, bounds=(0.05, 10.0)),  # last sigma_k / sigma_n
        "iterations": Hyper(8, span=8.0, calibrate=True, integer=True, bounds=(1, 40)),
        "lam": Hyper(0.23, span=10.0, calibrate=True, bounds=(0.01, 100.0)),  # DPIR's weight of the data step
        "sigma_start": Hyper(49 / 255, span=4.0, calibrate=True, bounds=(0.01, 0.5)),  # first denoiser level
    }

    def __init__(self, denoiser: torch.nn.Module, **hyper: float):
        super().__init__(**hyper)
        self.denoiser = denoiser

    @staticmethod
    def schedule(physics, hyper) -> tuple[torch.Tensor, torch.Tensor]:
        """(denoiser levels sigma_k, data step sizes gamma_k) for this task's noise level."""
        sigma_n = noise_level(physics, floor=NOISE_FLOOR)
        sigmas = dpir_schedule(int(round(hyper["iterations"])), hyper["strength"] * sigma_n, hyper["sigma_start"])
        return sigmas, sigmas**2 / (hyper["lam"] * sigma_n**2)

    def run(self, y, physics, x0, hyper, options, unfold: bool = False) -> torch.Tensor:
        sigmas, steps = self.schedule(physics, hyper)
        algo = HQS(
            data_fidelity=L2(),
            prior=PnPPrior(denoiser=self.denoiser),
            params_algo={"stepsize": steps.tolist(), "g_param": sigmas.tolist()},
            max_iter=len(sigmas),
            early_stop=False,
            unfold=unfold,  # deepinv runs its iterations under no_grad unless unfolded
        )
        with precision(self.denoiser, options.method.get("bf16", False) and not unfold):
            return algo(y, physics, init=x0)

    @torch.no_grad()
    def reconstruct(self, y, physics, x0, hyper, options) -> tuple[torch.Tensor, SolveReport]:
        return self.run(y, physics, x0, hyper, options), SolveReport(iterations=int(round(hyper["iterations"])))

    def differentiable_reconstruct(self, y, physics, x0, x_ref, hyper, options) -> torch.Tensor:
        """The same HQS iterations with autograd on (in fp32), from the initializer x0 of y."""
        with torch.enable_grad():
            return self.run(y, physics, x0, hyper, options, unfold=True)
