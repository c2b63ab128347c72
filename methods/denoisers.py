"""Noise-conditional Gaussian denoisers trained by regbench: the prior of PnP and diffusion.

The network is a deepinv model (DRUNet, noise-level map as an extra input
channel) named in the method's YAML; `Preconditioned` wraps it with EDM's
preconditioning (Karras et al. 2022):

    D(x, s) = m + c_skip(s) (x - m) + c_out(s) F(c_in(s) (x - m), log(s) / 4)

so that the network sees unit-variance inputs and predicts a unit-variance
target at every noise level. Why: diffusion samplers call the denoiser from
s ~ 80 (pure noise) down to s ~ 0.005, far outside what a plain DRUNet sees in
training; preconditioned, D tends to the data mean at large s and to the
identity at small s whatever F does, and a few minutes of CPU training learn a
residual instead of the whole image. deepinv's `EDMPrecond` assumes zero-mean
data in [-1, 1]; images here are in [0, 1], hence the mean `m`.

`train_denoiser` is the one training loop (noisy BSD400 patches at random
noise levels, Adam with cosine decay, optional bfloat16 autocast: 2x faster
convolutions on CPUs with AMX/AVX-512-bf16, ~0.5% gradient error).
"""

from __future__ import annotations

import contextlib
import math

import torch
from deepinv.models import Denoiser
from torch.nn.utils import parametrize

from regbench.training.loop import TrainingLoop

SIGMA_FLOOR = 1e-4  # log(sigma) of the noise-level map; D is the identity below it up to ~1e-4


class Preconditioned(Denoiser):
    """EDM-preconditioned noise-conditional denoiser around `net(x, noise_map_value)`."""

    def __init__(self, net: torch.nn.Module, data_mean: float = 0.45, data_std: float = 0.25):
        super().__init__()
        self.net = net
        self.data_mean, self.data_std = float(data_mean), float(data_std)
        self.bf16 = False  # run the network under bfloat16 autocast (see `precision`)

    def _sigma(self, sigma, x: torch.Tensor) -> torch.Tensor:
        s = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)
        if s.numel() == 1:
            s = s.expand(x.shape[0])
        if s.numel() != x.shape[0]:
            raise ValueError(f"sigma has {s.numel()} values for a batch of {x.shape[0]} images")
        return s.clamp_min(SIGMA_FLOOR).view(-1, *([1] * (x.dim() - 1)))

    def coefficients(self, s: torch.Tensor):
        """(c_skip, c_out, c_in) of EDM for noise level(s) s."""
        sd2 = self.data_std**2
        total = (s**2 + sd2).sqrt()
        return sd2 / total**2, s * self.data_std / total, 1.0 / total

    def forward(self, x: torch.Tensor, sigma, **kwargs) -> torch.Tensor:
        s = self._sigma(sigma, x)
        c_skip, c_out, c_in = self.coefficients(s)
        centered = x.float() - self.data_mean
        # (no autocast context at all when off: an enabled=False one would switch off the caller's, e.g. training's)
        with torch.autocast(x.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext():
            f = self.net(c_in * centered, (s.log() / 4).reshape(-1))
        return self.data_mean + c_skip * centered + c_out * f.float()


@contextlib.contextmanager
def precision(denoiser: torch.nn.Module, bf16: bool):
    """Within the block, the denoiser's network runs in bfloat16 (`reconstruct.<profile>.bf16`):
    ~2x faster on CPUs with AMX; the preconditioning and everything around the denoiser
    (data steps, sampler arithmetic) stay in float32/float64."""
    before = getattr(denoiser, "bf16", False)
    denoiser.bf16 = bool(bf16)
    try:
        yield
    finally:
        denoiser.bf16 = before


def seeded_init(module: torch.nn.Module, seed: int) -> None:
    """Redraw the weights (and biases) of every convolution and linear layer from PyTorch's
    default init (kaiming-uniform, a=sqrt(5)) with a seeded generator: training is then
    reproducible whatever the global RNG did before the model was built. Other
    parameters (e.g. spline coefficients) keep their deterministic init."""
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for layer in module.modules():
            if not isinstance(layer, (torch.nn.modules.conv._ConvNd, torch.nn.Linear)):
                continue
            weight = (
                layer.parametrizations.weight.original if parametrize.is_parametrized(layer, "weight") else layer.weight
            )
            fresh = torch.empty(weight.shape, dtype=weight.dtype)
            torch.nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=g)
            weight.copy_(fresh)
            if getattr(layer, "bias", None) is not None:
                fan_in = (
                    fresh[0].numel() if isinstance(layer, torch.nn.Linear) else fresh.shape[1] * fresh[0, 0].numel()
                )
                bound = 1.0 / math.sqrt(fan_in)
                layer.bias.copy_(torch.empty(layer.bias.shape).uniform_(-bound, bound, generator=g))


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
    raise ValueError(f"train.noise.dist={dist!r}; allowed: uniform, loguniform, lognormal")


def train_denoiser(model: Preconditioned, patches, budget: dict, progress: bool = True, desc: str = "denoiser") -> dict:
    """Adam on E ||D(x + s n, s) - x||^2 over BSD400 patches x and noise levels s.

    `loss: mse` weighs every sample alike (what PnP needs: the error at the noise
    levels it is used at); `loss: edm` weighs by 1 / c_out(s)^2, which makes every
    noise level count alike (what a diffusion prior needs, small s included).
    """
    steps, batch, size = int(budget["steps"]), int(budget["batch"]), int(budget["patch"])
    weighting = budget.get("loss", "mse")
    if weighting not in ("mse", "edm"):
        raise ValueError(f"train.loss={weighting!r}; allowed: mse, edm")
    seed = int(budget.get("seed", 0))
    if not budget.get("init"):  # a warm start (train.init) keeps the weights it was given
        seeded_init(model, seed)
    device = next(model.parameters()).device
    bf16 = bool(budget.get("bf16", False))
    opt = torch.optim.Adam(model.parameters(), lr=float(budget["lr"]))
    warmup = max(1, int(0.02 * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(k, steps) / max(steps, 1)))
    )
    gen = torch.Generator().manual_seed(seed + 1)
    loop = TrainingLoop(desc, steps, opt, sched, budget, progress, model=model, gen=gen, patches=patches)

    def step(k: int) -> dict:
        x = patches.sample(batch, size)
        s = sample_sigma(batch, budget["noise"], gen).to(x)
        y = x + s.view(-1, 1, 1, 1) * torch.randn(x.shape, generator=gen).to(x)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(y, s)
        err = (out.float() - x).pow(2).flatten(1).mean(1)
        if weighting == "edm":
            loss = (err / model.coefficients(s.clamp_min(SIGMA_FLOOR))[1].pow(2)).mean()
        else:
            loss = err.mean()
        loss.backward()
        return {"loss": loss.item(), "psnr": float(-10 * torch.log10(err.detach().mean().clamp_min(1e-12)))}

    model.train()
    log = loop.run(step)
    model.eval()
    return log
