"""Deep-equilibrium training of a fixed-point reconstruction (`deal_unrolled`: DEAL, Pourya et al. 2025).

Each step draws patches and noise levels uniform in [`sigma_min`, `sigma_max`] (0-255), runs the
method's trained map on denoising (`denoising_fixed_point`: the budget's mask updates, each followed by a CG solve)
without gradients, then backpropagates the MSE through the method's `equilibrium_step` at that
fixed point (its backward applies the inverse normal operator by CG: implicit differentiation
of the last least-squares solve, the mask held at its fixed-point input). Adam with cosine
decay; the method's parameter groups give its splines their own learning rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from regbench.training.loop import TrainingLoop, psnr_of_mse
from regbench.training.schemes.base import Scheme, seeded_init


class FixedPointTraining(Scheme):
    needs = ("fixed_point", "parameters")

    def train(self, method, patches, settings: dict, progress: bool = True, label: str = "") -> dict:
        steps, batch, size = int(settings["steps"]), int(settings["batch"]), int(settings["patch"])
        lo, hi = float(settings["sigma_min"]), float(settings["sigma_max"])
        outer, cg_iters = int(settings["outer_iters"]), int(settings["cg_iters"])
        tol, cg_tol = float(settings.get("tol", 1e-3)), float(settings.get("cg_tol", 1e-3))
        seed = int(settings.get("seed", 0))
        seeded_init(method.net, seed)
        opt = torch.optim.Adam(method.parameter_groups(float(settings["lr"]), settings))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
        gen = torch.Generator().manual_seed(seed + 1)
        loop = TrainingLoop(
            label or self.name, steps, opt, sched, settings, progress, net=method.net, gen=gen, patches=patches
        )

        def step(i: int) -> dict:
            x = patches.sample(batch, size)
            sigma = (lo + (hi - lo) * torch.rand(batch, 1, 1, 1, generator=gen)).to(x)
            y = x + sigma / 255.0 * torch.randn(x.shape, generator=gen).to(x)
            with torch.no_grad():
                x_star, mask_input, k = method.denoising_fixed_point(y, sigma, outer, cg_iters, tol, cg_tol)
            loss = F.mse_loss(method.equilibrium_step(y, x_star, mask_input, sigma, cg_iters, cg_tol), x)
            loss.backward()
            return {"loss": loss.item(), "psnr": psnr_of_mse(loss.item()), "outer": k}

        method.train()
        log = loop.run(step)
        method.eval()
        method.finish_training()
        return log
