"""Total Deep Variation (Kobler, Effland, Kunisch, Pock, CVPR 2020; TPAMI 2021).

    R(x) = 1/mu^2 * sum_pixels 1/(2F) (w^T N(K mu x))^2

K: a 3x3 convolution from the image to F features, zero-mean (R ignores constant images: K is
applied with replicate padding, which maps a constant image to a constant, so that this holds
exactly, borders included) with each filter's norm at most 1. N: a multiscale residual network of
`macro_blocks` U-shaped macro blocks over `scales` scales; each scale applies micro blocks
z + C2 phi(C1 z) with the smooth log-student-t phi(t) = log(1 + nu t^2) / (2 nu), passes to the next
coarser scale by a stride-2 convolution and back by a transposed one, whose 3x3 kernels are
blurred by a 5x5 binomial filter against aliasing. w: a 1x1 convolution to one channel. The
quadratic potential is the one of the comparative study of learned regularizers (Hertrich, Wong,
Denker et al. 2025): R >= 0 with its minimum at constant images, so the energy has a minimizer.
mu (an input scale, as the study's learned scaling) and lam are learned with the weights.

Any image size works: a stride-2 convolution maps H to ceil(H/2) and the transposed one returns
exactly H (its output padding is set from the finer scale's size), so nothing is padded or cropped.
The gradient is by autograd (NeuralRegularizer): no Lipschitz bound, the solver line-searches.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from regbench.methods.base import Hyper, Regularizer
from regbench.methods.neural import NeuralRegularizer, autograd_gradient

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])


def _weight(g: torch.Generator, c_out: int, c_in: int, k: int) -> torch.nn.Parameter:
    """N(0, 1 / fan_in) weights drawn from the method's own generator: the init is reproducible
    whatever the global RNG did before."""
    return torch.nn.Parameter(torch.randn(c_out, c_in, k, k, generator=g) / math.sqrt(c_in * k * k))


def log_student_t(t: torch.Tensor, nu: float) -> torch.Tensor:
    """phi(t) = log(1 + nu t^2) / (2 nu): smooth, phi'(t) = t / (1 + nu t^2) (TDV's activation)."""
    return torch.log1p(nu * t * t) / (2.0 * nu)


class MicroBlock(torch.nn.Module):
    """z + C2 phi(C1 z): 3x3 convolutions, no bias."""

    def __init__(self, features: int, nu: float, g: torch.Generator):
        super().__init__()
        self.nu = nu
        self.c1, self.c2 = _weight(g, features, features, 3), _weight(g, features, features, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + F.conv2d(log_student_t(F.conv2d(z, self.c1, padding=1), self.nu), self.c2, padding=1)


class Resample(torch.nn.Module):
    """Stride-2 convolution (down) or its transpose with its own weights (up); the 3x3 kernel is blurred
    to 7x7 by the binomial filter."""

    def __init__(self, fine: int, coarse: int, g: torch.Generator):
        super().__init__()
        self.weight = _weight(g, coarse, fine, 3)
        self.register_buffer("blur", (torch.outer(_BINOMIAL, _BINOMIAL) / 256.0).view(1, 1, 5, 5), persistent=False)

    def kernel(self) -> torch.Tensor:
        c_out, c_in = self.weight.shape[:2]
        full = F.conv2d(self.weight.reshape(-1, 1, 3, 3), self.blur, padding=4)
        return full.reshape(c_out, c_in, 7, 7)

    def down(self, z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, self.kernel(), stride=2, padding=3)

    def up(self, z: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """Back to the finer `size` (H, W): output H = 2h - 1 + output_padding."""
        pad = (size[0] - (2 * z.shape[-2] - 1), size[1] - (2 * z.shape[-1] - 1))
        return F.conv_transpose2d(z, self.kernel(), stride=2, padding=3, output_padding=pad)


class MacroBlock(torch.nn.Module):
    """One U: down the scales (a micro block, then down-sampling added to the coarser state), one micro
    block at the coarsest scale, up again (up-sampling added as a skip, then a second micro block)."""

    def __init__(self, widths: list[int], nu: float, g: torch.Generator):
        super().__init__()
        n = len(widths)
        self.first = torch.nn.ModuleList(MicroBlock(w, nu, g) for w in widths)  # the coarsest's only block
        self.second = torch.nn.ModuleList(MicroBlock(w, nu, g) for w in widths[:-1])
        self.down = torch.nn.ModuleList(Resample(widths[i], widths[i + 1], g) for i in range(n - 1))
        self.up = torch.nn.ModuleList(Resample(widths[i], widths[i + 1], g) for i in range(n - 1))

    def forward(self, zs: list) -> list:
        zs = list(zs)
        last = len(zs) - 1
        for i in range(last):
            zs[i] = self.first[i](zs[i])
            down = self.down[i].down(zs[i])
            zs[i + 1] = down if zs[i + 1] is None else zs[i + 1] + down
        zs[last] = self.first[last](zs[last])
        for i in reversed(range(last)):
            zs[i] = self.second[i](zs[i] + self.up[i].up(zs[i + 1], zs[i].shape[-2:]))
        return zs


class TDVNetwork(torch.nn.Module):
    """x -> w^T N(K x), one channel at the image's size."""

    def __init__(self, features=32, macro_blocks=3, scales=3, multiplier=1, nu=1.0, init_seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(int(init_seed))
        widths = [int(features * multiplier**i) for i in range(scales)]
        self.scales = scales
        self.K = _weight(g, features, 1, 3)
        self.blocks = torch.nn.ModuleList(MacroBlock(widths, float(nu), g) for _ in range(macro_blocks))
        self.w = _weight(g, 1, features, 1)

    def first_kernel(self) -> torch.Tensor:
        """K's filters: zero-mean, each of norm at most 1."""
        k = self.K - self.K.mean(dim=(1, 2, 3), keepdim=True)
        return k / k.flatten(1).norm(dim=1).clamp_min(1.0).view(-1, 1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zs = [F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.first_kernel())] + [None] * (self.scales - 1)
        for block in self.blocks:
            zs = block(zs)
        return F.conv2d(zs[0], self.w)


class TDV(NeuralRegularizer):
    hyperparameters = {
        # lam: near the best for denoising at sigma=25/255 at init (about 30 to 100), so training starts there
        "lam": Hyper(30.0, span=10.0, calibrate=True, noise_power=1.0),
        "mu": Hyper(1.0),  # input scale: learned in training, not calibrated (one solve costs much)
    }
    learned_hyperparameters = ("lam", "mu")

    def __init__(self, features=32, macro_blocks=3, scales=3, multiplier=1, nu=1.0, init_seed=0, **hyper: float):
        super().__init__(**hyper)
        self.features = int(features)
        self.net = TDVNetwork(features, macro_blocks, scales, multiplier, nu, init_seed)

    def energy(self, x: torch.Tensor, mu: float | torch.Tensor | None = None) -> torch.Tensor:
        """R(x) per image (mu: the method's own value unless given)."""
        mu = self.hp["mu"] if mu is None else mu
        r = self.net(mu * x)
        return r.pow(2).flatten(1).sum(1) / (2.0 * self.features * mu**2)

    def gradient(self, x: torch.Tensor, mu: float | torch.Tensor | None = None) -> torch.Tensor:
        """grad R(x) by autograd; differentiable (in the weights, mu and x) when grad mode is on."""
        return autograd_gradient(lambda z: self.energy(z, mu), x)

    def regularizer(self, hyper, options, like) -> Regularizer:
        """R at hyper["mu"] (a tensor in training: the gradient is then differentiable in it)."""
        mu = hyper["mu"]
        return Regularizer(lambda x: self.energy(x, mu), grad=lambda x: self.gradient(x, mu), lipschitz=None)
