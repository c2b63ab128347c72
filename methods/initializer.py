"""The task's own initializer (FBP for CT, zero-filled for MRI, y for deblurring, bicubic
for super-resolution) reported as a method: the baseline every regularizer must beat."""

from __future__ import annotations

import torch

from regbench.methods.base import Method, SolveReport


class Initializer(Method):
    family = "baseline"

    @torch.no_grad()
    def reconstruct(self, y, physics, x0, hyper, options):
        return x0.clone(), SolveReport(iterations=0)
