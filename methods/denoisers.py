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

It is trained by the `denoiser_mse` (PnP) and `diffusion_edm` (diffusion priors)
schemes of regbench.training.schemes.denoiser.
"""

from __future__ import annotations

import contextlib

import torch
from deepinv.models import Denoiser

SIGMA_FLOOR = 1e-4  # log(sigma) of the noise-level map; D is the identity below it up to ~1e-4


class Preconditioned(Denoiser):
    """EDM-preconditioned noise-conditional denoiser around `net(x, noise_map_value)`."""

    sigma_floor = SIGMA_FLOOR

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
