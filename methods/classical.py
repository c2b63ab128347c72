"""A classical denoiser applied once at the measurement's noise level (BM3D): the reference line of every
denoising table, with nothing trained and nothing calibrated (the published protocol: the true sigma)."""

from __future__ import annotations

import torch

from regbench.methods.base import Hyper, Method, SolveReport, noise_level


class OneShotDenoiser(Method):
    family = "denoiser"
    repeatable = False  # the bm3d library's output varies from call to call (up to 4e-7; more under load)
    # the denoiser's sigma is `strength` x the measurement noise std; 1: the published protocol
    hyperparameters = {"strength": Hyper(1.0)}

    def __init__(self, denoiser: torch.nn.Module, **hyper: float):
        super().__init__(**hyper)
        self.denoiser = denoiser

    @torch.no_grad()
    def reconstruct(self, y, physics, x0, hyper, options) -> tuple[torch.Tensor, SolveReport]:
        if options.operator is not None and not options.operator.identity:
            raise ValueError("a one-shot denoiser reconstructs denoising tasks only (the operator is not the identity)")
        return self.denoiser(y, hyper["strength"] * noise_level(physics)), SolveReport(iterations=1)
