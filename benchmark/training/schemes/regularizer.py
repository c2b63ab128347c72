"""What every training scheme of a smooth regularizer shares (bilevel, score matching, adversarial).

The regularizer's parameters (the method's `parameter_groups`) and its learned hyperparameters
(`learned_hyperparameters`, log-parametrized: `lam` and e.g. the ridge regularizers' `mu`, at
`scalar_lr_factor` x lr) are trained by Adam with cosine decay on noisy training patches
y = x + sigma n (`sigma` on the 0-255 scale) on the shared loop; a scheme gives only the loss of
one batch (`batch_loss`), having called `backward()` on what it optimizes.
"""

from __future__ import annotations

import math

import torch

from regbench.solvers.options import SolverOptions
from regbench.training.loop import TrainingLoop, psnr_of_mse
from regbench.training.schemes.base import Scheme

DIFFERENTIABLE = SolverOptions(compile=False, track_energy=False)  # R's gradient with autograd on


class RegularizerScheme(Scheme):
    needs = ("gradient", "parameters")
    show = ("psnr", "lipschitz")

    def batch_loss(self, method, x, y, hyper: dict, values: dict, settings: dict, draws: torch.Generator) -> dict:
        """Loss of one batch (clean x, noisy y; `hyper`: tensors, `values`: their floats; `draws`: the
        generator for the scheme's own random draws, snapshotted with the run): calls backward,
        returns the metrics (`loss`, and what the progress bar shows)."""
        raise NotImplementedError

    def train(self, method, patches, settings: dict, progress: bool = True, label: str = "") -> dict:
        steps, batch, size = int(settings["steps"]), int(settings["batch"]), int(settings["patch"])
        sigma = float(settings["sigma"]) / 255.0
        learned = {k: torch.nn.Parameter(torch.tensor(math.log(method.hp[k]))) for k in method.learned_hyperparameters}
        lr = float(settings["lr"])
        scalars = {"params": list(learned.values()), "lr": lr * float(settings.get("scalar_lr_factor", 10.0))}
        opt = torch.optim.Adam([*method.parameter_groups(lr, settings), *([scalars] if learned else [])])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
        noise = torch.Generator().manual_seed(int(settings.get("seed", 0)) + 1)
        loop = TrainingLoop(
            label or self.name,
            steps,
            opt,
            sched,
            settings,
            progress,
            show=self.show,
            model=method,
            noise=noise,
            patches=patches,
            **{f"log_{k}": p for k, p in learned.items()},
        )

        def step(k: int) -> dict:
            x = patches.sample(batch, size)
            y = x + sigma * torch.randn(x.shape, generator=noise).to(x)
            hyper = {**method.hp, **{name: p.exp() for name, p in learned.items()}}
            values = {name: v.item() if torch.is_tensor(v) else float(v) for name, v in hyper.items()}
            metrics = self.batch_loss(method, x, y, hyper, values, settings, noise)
            return {**metrics, **{name: values[name] for name in learned}}

        log = loop.run(step)
        for name, p in learned.items():  # learned with the weights: the checkpoint carries them
            method.hp[name] = p.exp().item()
        extra = {"final_lipschitz": loop.history["lipschitz"][-1]} if steps and "lipschitz" in loop.history else {}
        return {**log, **extra}


def mse_metrics(loss: torch.Tensor, **more) -> dict:
    mse = float(loss.detach())
    return {"loss": mse, "psnr": psnr_of_mse(mse), **more}
