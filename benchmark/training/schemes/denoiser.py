"""Training a noise-conditional denoiser over noise levels (`denoiser_mse`, `diffusion_edm`).

Adam on E ||D(x + s n, s) - x||^2 over training patches x and noise levels s drawn from
`noise` (2% warm-up, then cosine decay; optional bfloat16 autocast: 2x faster convolutions on
CPUs with AMX/AVX-512-bf16, ~0.5% gradient error):
  - `denoiser_mse` weighs every sample alike: what PnP needs, the error at the noise levels it
    is used at (DRUNet's training, sigma in [1, 50]/255);
  - `diffusion_edm` weighs by 1 / c_out(s)^2 (EDM, Karras et al. 2022), which makes every noise
    level count alike: what a diffusion prior needs, small s included.
"""

from __future__ import annotations

import math

import torch

from regbench.training.loop import TrainingLoop, psnr_of_mse
from regbench.training.schemes.base import Scheme, seeded_init


def sample_sigma(n: int, spec: dict, gen: torch.Generator) -> torch.Tensor:
    """n training noise levels (0-1 image scale): `dist` uniform | loguniform on [min, max],
    or lognormal (log sigma ~ N(log `median`, `log_std`), EDM's choice for diffusion)."""
    dist = spec.get("dist", "uniform")
    u = torch.rand(n, generator=gen)
    if dist == "uniform":
        return spec["min"] + (spec["max"] - spec["min"]) * u
    if dist == "loguniform":
        lo, hi = math.log(spec["min"]), math.log(spec["max"])
        return torch.exp(lo + (hi - lo) * u)
    if dist == "lognormal":
        return torch.exp(math.log(spec["median"]) + spec["log_std"] * torch.randn(n, generator=gen))
    raise ValueError(f"training noise dist={dist!r}; allowed: uniform, loguniform, lognormal")


class DenoiserTraining(Scheme):
    needs = ("denoiser",)
    edm_weighting = False

    def train(self, method, patches, settings: dict, progress: bool = True, label: str = "") -> dict:
        model = method.denoiser
        steps, batch, size = int(settings["steps"]), int(settings["batch"]), int(settings["patch"])
        seed = int(settings.get("seed", 0))
        if not settings.get("init"):  # a warm start (train.init) keeps the weights it was given
            seeded_init(model, seed)
        device = next(model.parameters()).device
        bf16 = bool(settings.get("bf16", False))
        opt = torch.optim.Adam(model.parameters(), lr=float(settings["lr"]))
        warmup = max(1, int(0.02 * steps))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: min(1.0, (k + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(k, steps) / max(steps, 1)))
        )
        gen = torch.Generator().manual_seed(seed + 1)
        loop = TrainingLoop(
            label or self.name, steps, opt, sched, settings, progress, model=model, gen=gen, patches=patches
        )

        def step(k: int) -> dict:
            x = patches.sample(batch, size)
            s = sample_sigma(batch, settings["noise"], gen).to(x)
            y = x + s.view(-1, 1, 1, 1) * torch.randn(x.shape, generator=gen).to(x)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                out = model(y, s)
            err = (out.float() - x).pow(2).flatten(1).mean(1)
            if self.edm_weighting:
                loss = (err / model.coefficients(s.clamp_min(model.sigma_floor))[1].pow(2)).mean()
            else:
                loss = err.mean()
            loss.backward()
            return {"loss": loss.item(), "psnr": psnr_of_mse(err.detach().mean().item())}

        model.train()
        log = loop.run(step)
        model.eval()
        return log


class DenoiserMSE(DenoiserTraining):
    edm_weighting = False


class DiffusionEDM(DenoiserTraining):
    needs = ("denoiser", "edm")
    edm_weighting = True
