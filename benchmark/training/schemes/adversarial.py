"""Adversarial regularization of a smooth regularizer (`adversarial`, `adversarial_local`).

R is trained as a Wasserstein critic (Lunz, Oektem, Schoenlieb 2018): small on clean patches x,
large on noisy ones y (the reconstructions with artifacts, for denoising the noisy input), with
the one-sided gradient penalty of WGAN-GP on random points between the two,

    loss = mean R(x) - mean R(y) + weight * mean( max(||grad R(t x + (1 - t) y)|| - 1, 0)^2 ),

as the comparative study of learned regularizers (Hertrich, Wong, Denker et al. 2025) trains its
AR variants. The loss does not see the regularization weight `lam`; after training it is set
where the denoising energy is stationary at the clean patches on average,
lam = mean ||y - x|| / mean ||grad R(x)|| (the study's estimate), and the calibration refines it.
`adversarial_local` is the same loss on small patches (the study's local AR, LAR): the critic
judges local structure only, which a convolutional R sums over the image.
"""

from __future__ import annotations

import torch

from regbench.training.schemes.regularizer import DIFFERENTIABLE, RegularizerScheme


class Adversarial(RegularizerScheme):
    show = ("loss", "gap", "penalty")

    def batch_loss(self, method, x, y, hyper, values, settings, draws) -> dict:
        reg = method.regularizer(hyper, DIFFERENTIABLE, y)
        real, fake = reg.fn(x).mean(), reg.fn(y).mean()
        t = torch.rand((x.shape[0], 1, 1, 1), generator=draws).to(x)
        norm = reg.grad(t * x + (1 - t) * y).flatten(1).norm(dim=1)
        penalty = float(settings["penalty_weight"]) * (norm - 1).clamp_min(0).square().mean()
        loss = real - fake + penalty
        loss.backward()
        return {
            "loss": loss.item(),
            "gap": (fake - real).item(),  # the critic's Wasserstein-1 estimate between noisy and clean
            "penalty": penalty.item(),
            "grad_norm": norm.mean().item(),
        }

    def train(self, method, patches, settings: dict, progress: bool = True, label: str = "") -> dict:
        log = super().train(method, patches, settings, progress, label)
        log["lam_estimate"] = method.hp["lam"] = stationary_weight(method, patches, settings)
        return log


@torch.no_grad()
def stationary_weight(method, patches, settings: dict) -> float:
    """lam at which x - y + lam grad R(x) = 0 holds in norm on average over one batch of training
    patches: the scale the adversarial loss leaves open."""
    batch, size = int(settings["batch"]), int(settings["patch"])
    x = patches.sample(batch, size)
    noise = torch.Generator().manual_seed(int(settings.get("seed", 0)) + 2)
    y = x + float(settings["sigma"]) / 255.0 * torch.randn(x.shape, generator=noise).to(x)
    reg = method.regularizer(method.hp, DIFFERENTIABLE, x)
    grad_norm = reg.grad(x).flatten(1).norm(dim=1).mean()
    if not torch.isfinite(grad_norm) or grad_norm <= 0:
        raise ValueError(f"adversarial training left grad R = {float(grad_norm)} on clean patches: no scale for lam")
    return float((y - x).flatten(1).norm(dim=1).mean() / grad_norm)
