"""Denoising score matching of a smooth regularizer (`score`).

The regularizer defines a denoiser through its gradient, x_hat = y - lam grad R(y) (one gradient
step of the denoising energy from y, Tweedie's formula when lam grad R is the score of the noisy
data), fitted by the MSE to the clean patch: no inner solve, so a step costs one gradient of R
and its backward. The comparative study of learned regularizers (Hertrich, Wong, Denker et al.
2025) finds it the cheapest scheme and, on BSD68, a few tenths of a dB behind bilevel training.
"""

from __future__ import annotations

import torch.nn.functional as F

from regbench.training.schemes.regularizer import DIFFERENTIABLE, RegularizerScheme, mse_metrics


class ScoreMatching(RegularizerScheme):
    show = ("psnr",)

    def batch_loss(self, method, x, y, hyper, values, settings, draws) -> dict:
        reg = method.regularizer(hyper, DIFFERENTIABLE, y)
        loss = F.mse_loss(y - hyper["lam"] * reg.grad(y), x)
        loss.backward()
        bound = float("nan") if reg.lipschitz is None else 1.0 + values["lam"] * reg.lipschitz
        return mse_metrics(loss, lipschitz=bound)
