"""LPN: learned proximal networks (Fang, Buchanan & Sulam, ICLR 2024) as a Plug-and-Play prior.

The denoiser is f = grad psi with psi an input-convex network (ICNN) of a p x p patch, so f is
exactly the proximal operator of some (possibly nonconvex) regularizer phi (Gribonval & Nikolova 2020):

    z_1 = s(W_0 x + b_0),    z_{i+1} = s(V_i z_i + W_i S_i x + b_i),    psi = v^T z_L + alpha ||x||^2

s: softplus of sharpness `beta` (convex, nondecreasing, smooth so f is continuous), V_i and v
nonnegative (kept so by projection after each step, and by clamping where psi is evaluated, so psi
is convex whatever trained it), W_i, b_i free, S_i a bilinear resampling of x to the layer's scale.
The layout is the study's 64 x 64 LPN: strides 2,1,2,1,2 down to p/8, then a p/8 x p/8 convolution
to `features` units and a linear read-out. psi takes images in [-1, 1] (x' = 2x - 1); in [0, 1]
coordinates the potential is psi(2x - 1) / 4 + sum(x) / 2, whose gradient is f.
deepinv's `ICNN` is a different network (Tan et al. 2023: single-scale, squared inputs, leaky ReLU,
so its gradient jumps), hence this one.

Images larger than p are denoised by overlapping p x p patches (stride p/2, averaged), as the LPN
code and the comparative study of learned regularizers (Hertrich, Wong, Denker et al. 2025) do.

Training (`fit`, scheme `method_fit`): noise of one level (`sigma`, the study's 0.1) on BSD400
patches; Adam with L1 loss for the first half of the steps, then the proximal matching loss
1 - exp(-(||f(y) - x|| / gamma)^2) (RMS distance per patch) with gamma halved over 4 stages down
to `gamma_min` (the paper's schedule, which makes f approach the MAP, not the MMSE, denoiser), or
plain MSE (`loss: l2`).

Reconstruction: PnP-ADMM with f as the prox of the prior, as the study (x0: the task's initializer):

    u = prox_{tau f_data}(x - z),   x = r f(u + z) + (1 - r)(u + z),   z = z + u - x

with tau = sigma^2 / (lam sigma_n^2) (lam = 1: the MAP weighting when f is the prox of sigma^2
(-log p)) and relaxation r (the study's CT setting: 0.9). On denoising one iteration is f(y), the
study's denoising protocol. `iterations`, `lam`, `r` are calibrated per task.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from deepinv.optim.data_fidelity import L2

from regbench.methods.base import Hyper, noise_level
from regbench.methods.pnp import NOISE_FLOOR, PnP
from regbench.training.loop import TrainingLoop, psnr_of_mse
from regbench.training.schemes.base import seeded_init

INIT_LOG_MEAN, INIT_LOG_STD = -10.0, 0.1  # nonnegative weights start at exp(N(-10, 0.1)) ~ 5e-5, as LPN


class NonnegConv(torch.nn.Module):
    """A convolution whose kernel is used clamped at zero (straight-through: the gradient is the
    unclamped one, so projecting after each step is projected gradient descent, as LPN)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, bias: bool = False):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        self.bias = torch.nn.Parameter(torch.zeros(cout)) if bias else None
        self.stride, self.padding = stride, padding

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        w = self.weight
        w = w.clamp(min=0) + (w - w.detach())  # value clamped, gradient unclamped
        return F.conv2d(z, w, self.bias, self.stride, self.padding)


class ProximalNetwork(torch.nn.Module):
    """f = grad psi on p x p patches (psi convex), applied to larger images patch by patch.

    Called as a denoiser, `net(x, sigma)`: sigma is ignored (f is trained at one noise level, `sigma`).
    """

    def __init__(
        self,
        hidden: int = 256,
        patch: int = 64,
        beta: float = 100.0,
        alpha: float = 1e-6,
        features: int = 64,
        sigma: float = 0.1,
        chunk: int = 32,
    ):
        super().__init__()
        if patch % 8:
            raise ValueError(f"ProximalNetwork: patch={patch} must be a multiple of 8 (three stride-2 layers)")
        self.patch, self.beta, self.alpha, self.sigma, self.chunk = int(patch), float(beta), float(alpha), sigma, chunk
        p, h = self.patch, hidden
        strides = (2, 1, 2, 1, 2)
        self.first = torch.nn.Conv2d(1, h, 3, padding=1)
        self.layers = torch.nn.ModuleList(NonnegConv(h, h, 3, stride=s, padding=1) for s in strides)
        self.skip = torch.nn.ModuleList(torch.nn.Conv2d(1, h, 3, stride=s, padding=1) for s in strides)
        self.last = NonnegConv(h, features, p // 8)
        self.last_skip = torch.nn.Conv2d(1, features, p // 8)
        self.readout = NonnegConv(features, 1, 1, bias=True)
        # resolution of x each skip convolution sees: the input scale of its layer
        self.scales = (p, p // 2, p // 2, p // 4, p // 4)
        self.init_nonneg(0)

    def nonneg(self) -> list[NonnegConv]:
        return [*self.layers, self.last, self.readout]

    @torch.no_grad()
    def init_nonneg(self, seed: int) -> None:
        """LPN's init of the nonnegative weights: small positive, so f starts near the mid-gray image."""
        g = torch.Generator().manual_seed(int(seed))
        for layer in self.nonneg():
            w = torch.randn(layer.weight.shape, generator=g) * INIT_LOG_STD + INIT_LOG_MEAN
            layer.weight.copy_(w.exp())

    @torch.no_grad()
    def project(self) -> None:
        """Clip the nonnegative weights at zero (LPN's projection after each optimizer step)."""
        for layer in self.nonneg():
            layer.weight.clamp_(min=0)

    def _act(self, t: torch.Tensor) -> torch.Tensor:
        return F.softplus(t, beta=self.beta)

    def psi(self, x: torch.Tensor) -> torch.Tensor:
        """The convex potential of (B, 1, p, p) patches in [-1, 1] coordinates, shape (B,)."""
        if x.shape[-2:] != (self.patch, self.patch):
            raise ValueError(f"ProximalNetwork.psi takes {self.patch} x {self.patch} patches, got {tuple(x.shape)}")
        z = self._act(self.first(x))
        for conv, skip, s in zip(self.layers, self.skip, self.scales):
            xs = x if s == self.patch else F.interpolate(x, size=(s, s), mode="bilinear")
            z = self._act(conv(z) + skip(xs))
        xs = F.interpolate(x, size=(self.patch // 8,) * 2, mode="bilinear")
        z = self._act(self.last(z) + self.last_skip(xs))
        return self.readout(z).flatten(1).mean(1) + self.alpha * x.flatten(1).pow(2).sum(1)

    def potential(self, x: torch.Tensor) -> torch.Tensor:
        """psi in [0, 1] image coordinates, shape (B,): f(x) is its gradient."""
        return self.psi(2 * x - 1) / 4 + x.flatten(1).sum(1) / 2

    def prox(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) = grad potential(x) for (B, 1, p, p) patches; differentiable when grad mode is on."""
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            v = x if (create_graph and x.requires_grad) else x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.potential(v).sum(), v, create_graph=create_graph)
        return grad

    def forward(self, x: torch.Tensor, sigma=None, **kwargs) -> torch.Tensor:
        """f on (B, 1, H, W) images: overlapping p x p patches (stride p/2) averaged; images smaller than
        p are padded (reflected where possible) and cropped back."""
        h, w = x.shape[-2:]
        p = self.patch
        if h < p or w < p:
            pad = (0, max(p - w, 0), 0, max(p - h, 0))
            mode = "reflect" if p - h < h and p - w < w else "replicate"
            return self.forward(F.pad(x, pad, mode=mode))[..., :h, :w]
        if h == p and w == p:
            return self.prox(x)
        rows, cols = _starts(h, p), _starts(w, p)
        corners = [(i, j) for i in rows for j in cols]
        out = torch.zeros_like(x)
        count = torch.zeros_like(x[:1, :1])
        for k in range(0, len(corners), max(1, self.chunk // x.shape[0])):
            group = corners[k : k + max(1, self.chunk // x.shape[0])]
            batch = torch.cat([x[..., i : i + p, j : j + p] for i, j in group])
            for (i, j), piece in zip(group, self.prox(batch).split(x.shape[0])):
                out[..., i : i + p, j : j + p] += piece
                count[..., i : i + p, j : j + p] += 1
        return out / count


def _starts(size: int, p: int) -> list[int]:
    """Patch corners along one axis: every p/2, and one flush with the end."""
    starts = list(range(0, size - p + 1, p // 2))
    return starts if starts[-1] == size - p else [*starts, size - p]


def proximal_matching(out: torch.Tensor, x: torch.Tensor, gamma: float) -> torch.Tensor:
    """The proximal matching loss of Fang et al. 2024 (as their code): 1 - exp(-(d / gamma)^2),
    d the RMS distance per patch, averaged over the batch."""
    d = (out - x).flatten(1).pow(2).mean(1).sqrt()
    return (1 - torch.exp(-((d / gamma) ** 2))).mean()


class LPN(PnP):
    """PnP-ADMM with a learned proximal network as the prior's prox (see the module docstring)."""

    # calibrated in this order: iterations (1 on denoising is the study's protocol), the prior weight,
    # the relaxation (the study uses 0.9 on CT)
    hyperparameters = {
        "iterations": Hyper(20, span=20.0, calibrate=True, integer=True, bounds=(1, 40)),
        "lam": Hyper(1.0, span=10.0, calibrate=True, bounds=(1e-3, 1e3)),
        "relax": Hyper(1.0, span=4.0, calibrate=True, bounds=(0.05, 1.0)),
    }

    def run(self, y, physics, x0, hyper, options, unfold: bool = False) -> torch.Tensor:
        f = self.denoiser
        sigma_n = noise_level(physics, floor=NOISE_FLOOR)
        tau = float(f.sigma) ** 2 / (hyper["lam"] * sigma_n**2)
        r = hyper["relax"]
        data = L2()
        x, z = x0, torch.zeros_like(x0)
        for _ in range(int(round(hyper["iterations"]))):
            u = data.prox(x - z, y, physics, gamma=tau)
            v = u + z
            x = r * f(v) + (1 - r) * v if r != 1 else f(v)
            z = z + u - x
        return x

    def fit(self, patches, settings: dict, progress: bool = True) -> dict:
        """Train f on noisy patches at the network's noise level (see the module docstring)."""
        net = self.denoiser
        steps, batch, size = int(settings["steps"]), int(settings["batch"]), int(settings["patch"])
        if size != net.patch:
            raise ValueError(f"lpn: training patch {size} differs from the network's patch size {net.patch}")
        seed = int(settings.get("seed", 0))
        seeded_init(net, seed)  # the free convolutions
        net.init_nonneg(seed)
        loss_type = settings.get("loss", "pm")
        if loss_type not in ("pm", "l2"):
            raise ValueError(f"lpn: train.loss={loss_type!r}; allowed: pm, l2")
        pretrain = int(settings.get("pretrain", 0.5) * steps) if loss_type == "pm" else 0
        stages, gamma_min = int(settings.get("stages", 4)), float(settings.get("gamma_min", 0.16))
        per_stage = max(1, (steps - pretrain) // stages)
        lr, pretrain_lr = float(settings["lr"]), float(settings.get("pretrain_lr", settings["lr"]))
        opt = torch.optim.Adam(net.parameters(), lr=1.0)  # the schedule gives the learning rate itself
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: pretrain_lr if k < pretrain else lr)
        gen = torch.Generator().manual_seed(seed + 1)
        loop = TrainingLoop("lpn", steps, opt, sched, settings, progress, model=net, gen=gen, patches=patches)

        def step(k: int) -> dict:
            net.project()  # the previous step's update, projected: psi stays convex
            x = patches.sample(batch, size)
            y = x + float(net.sigma) * torch.randn(x.shape, generator=gen).to(x)
            out = net.prox(y)
            mse = (out - x).pow(2).mean()
            if k < pretrain:
                loss = (out - x).abs().mean()
            elif loss_type == "pm":
                stage = min((k - pretrain) // per_stage, stages - 1)
                loss = proximal_matching(out, x, gamma_min * 2 ** (stages - 1 - stage))
            else:
                loss = mse
            loss.backward()
            return {"loss": loss.item(), "psnr": psnr_of_mse(mse.item())}

        net.train()
        log = loop.run(step)
        net.project()
        net.eval()
        return log
