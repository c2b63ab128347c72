"""LSR, the least-squares-residual regularizer of the comparative study of learned regularizers
(Hertrich, Wong, Denker et al. 2025; the potential of Hurault et al. 2022's gradient-step denoisers):

    R(x) = 1/mu^2 * 1/2 ||mu x - f(mu x)||^2,   f(x) = x - N(x)

N is deepinv's DRUNet (a 4-scale U-Net of residual blocks, no biases) with the study's choices:
softplus activations, so that R is smooth (with ReLU grad R would jump, which breaks the line
search and the Hessian-vector products of bilevel training), 2 blocks per scale, widths
32-64-128-256 (paper profile), DRUNet's orthogonal init, and its noise-level input channel held at
the study's constant 0.03. mu is the study's learned input scale (learned with lam by training,
not calibrated). R >= 0, and R(x) = 0 exactly where mu x is a fixed point of f (N(mu x) = 0).

One change from the study: f is the identity minus the network (a global skip), so R = ||N||^2 / 2.
The study starts bilevel training from a score-matching pretraining of f; from scratch, its f
(the network alone, ~0 at init) makes R ~ ||x||^2 / 2, plain shrinkage, from which bilevel training
barely moved (BSD400 patches, sigma 25, 60 steps: 11.7 -> ~20 dB, the noisy input's PSNR), while
with the skip R starts at ~0, x* = y (20.1 dB), and improved steadily (21.5 dB in the same 60 steps).

The gradient, (I - J_f)^T (x - f(x)) at mu = 1, is by autograd; it has no Lipschitz bound, so the
shared solver finds its step by line search. Images of any size are padded (reflect, or replicate
where the image is smaller than the pad) to a multiple of 8 for the U-Net's three downsamplings;
R is measured on the original pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from deepinv.models import DRUNet

from regbench.methods.base import Hyper, Regularizer
from regbench.methods.neural import NeuralRegularizer, autograd_gradient

MULTIPLE = 8  # 3 stride-2 downsamplings


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """x padded (split evenly, reflect where the image is large enough, else replicate) to a multiple of
    `multiple` in both spatial dimensions, and the (left, right, top, bottom) padding to crop back."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
    if not any(pad):
        return x, pad
    mode = "reflect" if max(pad[0], pad[1]) < w and max(pad[2], pad[3]) < h else "replicate"
    return F.pad(x, pad, mode=mode), pad


class LSR(NeuralRegularizer):
    hyperparameters = {
        "lam": Hyper(1.0, span=100.0, calibrate=True, noise_power=1.0),
        "mu": Hyper(1.0, span=4.0),  # the input scale, learned with the weights
    }
    learned_hyperparameters = ("lam", "mu")

    def __init__(
        self,
        nc=(32, 64, 128, 256),
        nb: int = 2,
        sigma: float = 0.03,
        act_mode: str = "s",
        init_seed: int = 0,
        **hyper: float,
    ):
        super().__init__(**hyper)
        self.sigma = float(sigma)
        with torch.random.fork_rng(devices=[]):  # DRUNet's own init (orthogonal, gain 0.2), reproducibly
            torch.manual_seed(int(init_seed))
            self.net = DRUNet(1, 1, nc=tuple(nc), nb=int(nb), act_mode=act_mode, pretrained=None)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """N(x) = x - f(x): the U-Net at the constant noise level `sigma`, on x padded to a multiple of 8,
        cropped back."""
        padded, (left, right, top, bottom) = pad_to_multiple(x)
        level = torch.full_like(padded[:, :1], self.sigma)
        out = self.net.forward_unet(torch.cat([padded, level], dim=1))
        h, w = out.shape[-2:]
        return out[..., top : h - bottom, left : w - right]

    def denoise(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) = x - N(x)."""
        return x - self.residual(x)

    def energy(self, x: torch.Tensor, mu: float | torch.Tensor | None = None) -> torch.Tensor:
        """R(x) per image, shape (B,) (mu: the method's own value unless given)."""
        mu = self.hp["mu"] if mu is None else mu
        return 0.5 * self.residual(mu * x).pow(2).flatten(1).sum(1) / mu**2

    def regularizer(self, hyper, options, like) -> Regularizer:
        """R at hyper["mu"] (a tensor during training: its gradient is then differentiable in mu)."""
        mu = hyper["mu"]
        return Regularizer(lambda x: self.energy(x, mu), grad=lambda x: self._grad(x, mu), lipschitz=None)

    def _grad(self, x: torch.Tensor, mu) -> torch.Tensor:
        return autograd_gradient(lambda z: self.energy(z, mu), x)
