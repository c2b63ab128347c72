"""Input-convex CNN regularizers of the comparative study (Hertrich, Wong, Denker et al. 2025): ICNN and IDCNN.

The study's ICNN is a two-layer input-convex network (Amos et al. 2017) on the image:

    v = W_x x + b_x,   u = W_z phi(v) + b_z,   g(x) = sum_c sum_pixels a_c phi(u_c),

with W_x a 1->C convolution with zero-mean filters, W_z a C->C convolution with nonnegative weights,
a_c > 0 per-channel output scales and phi the smoothed ReLU (Huber-like: t^2/(2s) on [0, s], t - s/2
beyond, 0 below). phi is convex and nondecreasing and W_z >= 0, so g is convex in x.
IDCNN (Zhang and Leong 2025) is the difference of two such networks, g = g_1 - g_2, each with its own
learned smoothing s: a difference of convex functions. The smoothed ReLU makes grad g_2 Lipschitz, so
g is also weakly convex (`weak_convexity` gives a bound of its modulus).

Both run as one grouped network (a group per ICNN, signed outputs), and the study's scale wrapper
becomes the hyperparameter mu: R(x) = g(mu x) / mu^2, learned with lam and calibrated per task.
Gradient and Hessian-vector products are written out (cheaper than nested autograd, and still
differentiable in the parameters for bilevel training). Nonnegativity of W_z comes from squaring its
raw parameter (no projection step, which the shared training loop has no hook for).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from regbench.methods.base import Hyper, Regularizer
from regbench.methods.neural import NeuralRegularizer


class Weights(NamedTuple):
    """The constrained weights one evaluation uses (computed once per regularizer)."""

    wx: torch.Tensor  # (G*C, 1, k, k), zero-mean filters
    bx: torch.Tensor
    wz: torch.Tensor  # (G*C, C, k, k), nonnegative, grouped
    bz: torch.Tensor
    out: torch.Tensor  # (1, G*C, 1, 1): sign * a_c
    s: torch.Tensor  # (1, G*C, 1, 1): smoothing of each channel's group


def smoothed_relu(t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """phi(t) = clip(t, 0, s)^2 / (2 s) + max(t - s, 0): C^1, convex, nondecreasing."""
    return torch.minimum(t.clamp_min(0.0), s) ** 2 / (2 * s) + (t - s).clamp_min(0.0)


def smoothed_relu_slope(t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """phi'(t) = clip(t / s, 0, 1)."""
    return (t / s).clamp(0.0, 1.0)


def smoothed_relu_curvature(t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """phi''(t) = 1/s on (0, s), 0 elsewhere."""
    return ((t > 0) & (t < s)).to(t.dtype) / s


class GroupedICNN(torch.nn.Module):
    """`groups` two-layer ICNNs of `channels` channels each, evaluated together; output signs per group."""

    def __init__(
        self,
        channels: int = 32,
        kernel_size: int = 5,
        signs=(1.0,),
        smoothing: float = 0.01,
        learn_smoothing: bool = False,
        init_seed: int = 0,
    ):
        super().__init__()
        G, C, k = len(signs), int(channels), int(kernel_size)
        self.groups, self.channels, self.pad = G, C, k // 2
        g = torch.Generator().manual_seed(int(init_seed))
        # the study's init: xavier-normal zero-mean W_x, W_z = exp(N(-10, 0.1)) (so raw = its square root),
        # PyTorch's default uniform biases, output scales 1e-3
        xavier = math.sqrt(2.0 / (k * k + C * k * k))
        self.wx = torch.nn.Parameter(torch.randn(G * C, 1, k, k, generator=g) * xavier)
        self.bx = torch.nn.Parameter((torch.rand(G * C, generator=g) * 2 - 1) / k)
        self.wz_root = torch.nn.Parameter((0.5 * (torch.randn(G * C, C, k, k, generator=g) * 0.1 - 10.0)).exp())
        self.bz = torch.nn.Parameter((torch.rand(G * C, generator=g) * 2 - 1) / math.sqrt(C * k * k))
        self.log_scale = torch.nn.Parameter(torch.full((G * C,), math.log(1e-3)))
        log_s = torch.full((G,), math.log(smoothing))
        if learn_smoothing:
            self.log_smoothing = torch.nn.Parameter(log_s)
        else:
            self.register_buffer("log_smoothing", log_s)
        self.register_buffer("signs", torch.tensor([float(v) for v in signs]).repeat_interleave(C))

    def weights(self) -> Weights:
        wx = self.wx - self.wx.mean(dim=(1, 2, 3), keepdim=True)
        out = (self.signs * self.log_scale.exp()).view(1, -1, 1, 1)
        s = self.log_smoothing.exp().repeat_interleave(self.channels).view(1, -1, 1, 1)
        return Weights(wx, self.bx, self.wz_root**2, self.bz, out, s)

    def hidden(self, x: torch.Tensor, w: Weights):
        """The preactivations (v, u) of both layers."""
        v = F.conv2d(x, w.wx, w.bx, padding=self.pad)
        u = F.conv2d(smoothed_relu(v, w.s), w.wz, w.bz, padding=self.pad, groups=self.groups)
        return v, u

    def value(self, x: torch.Tensor, w: Weights) -> torch.Tensor:
        """g(x) per image, shape (B,)."""
        _, u = self.hidden(x, w)
        return (w.out * smoothed_relu(u, w.s)).flatten(1).sum(1)

    def zt(self, p: torch.Tensor, w: Weights) -> torch.Tensor:
        return F.conv_transpose2d(p, w.wz, padding=self.pad, groups=self.groups)

    def xt(self, p: torch.Tensor, w: Weights) -> torch.Tensor:
        return F.conv_transpose2d(p, w.wx, padding=self.pad)

    def gradient(self, x: torch.Tensor, w: Weights) -> torch.Tensor:
        """grad g(x) = W_x^T (phi'(v) * W_z^T (out * phi'(u)))."""
        v, u = self.hidden(x, w)
        back = self.zt(w.out * smoothed_relu_slope(u, w.s), w)
        return self.xt(smoothed_relu_slope(v, w.s) * back, w)

    def hessian_vector(self, x: torch.Tensor, w: Weights):
        """d -> Hess g(x) d, with q = W_z^T (out phi'(u)):
        W_x^T [phi''(v) q W_x d + phi'(v) W_z^T (out phi''(u) W_z (phi'(v) W_x d))]."""
        v, u = self.hidden(x, w)
        slope_v = smoothed_relu_slope(v, w.s)
        first = smoothed_relu_curvature(v, w.s) * self.zt(w.out * smoothed_relu_slope(u, w.s), w)
        second = w.out * smoothed_relu_curvature(u, w.s)

        def apply(d: torch.Tensor) -> torch.Tensor:
            dv = F.conv2d(d, w.wx, padding=self.pad)
            du = F.conv2d(slope_v * dv, w.wz, padding=self.pad, groups=self.groups)
            return self.xt(first * dv + slope_v * self.zt(second * du, w), w)

        return apply

    @torch.no_grad()
    def smoothness(self, group: int) -> float:
        """An upper bound of the Lipschitz constant of grad g_group (0 <= phi' <= 1, 0 <= phi'' <= 1/s):
        ||Hess|| <= ||W_x||^2 (max_c a_c ||W_z||^2 + max_j (W_z^T a)_j) / s, with ||W_x||^2 <= sum_c ||w_c||_1^2
        and ||W_z|| <= the largest singular value of its summed taps (nonnegative kernels)."""
        w, C = self.weights(), self.channels
        rows = slice(group * C, (group + 1) * C)
        wx, wz, a = w.wx[rows], w.wz[rows], w.out.flatten()[rows].abs()
        s = float(w.s.flatten()[group * C])
        wx_sq = float(wx.abs().sum(dim=(1, 2, 3)).pow(2).sum())
        taps = wz.sum(dim=(2, 3))  # (C_out, C_in)
        wz_sq = float(torch.linalg.matrix_norm(taps, ord=2)) ** 2
        into = float((a[:, None] * taps).sum(0).max())
        return wx_sq * (float(a.max()) * wz_sq + into) / s


class ConvexCNNRegularizer(NeuralRegularizer):
    """R(x) = g(mu x) / mu^2 for a (grouped, signed) two-layer ICNN g; solved by the shared line search."""

    hyperparameters = {
        "lam": Hyper(1.0, span=10.0, calibrate=True, noise_power=1.0),
        "mu": Hyper(1.0, span=4.0, calibrate=True),
    }
    learned_hyperparameters = ("lam", "mu")
    signs: tuple[float, ...] = (1.0,)
    learn_smoothing = False

    def __init__(
        self, channels: int = 32, kernel_size: int = 5, smoothing: float = 0.01, init_seed: int = 0, **hyper: float
    ):
        super().__init__(**hyper)
        self.net = GroupedICNN(channels, kernel_size, self.signs, smoothing, self.learn_smoothing, init_seed)

    def energy(self, x: torch.Tensor, mu=None, w: Optional[Weights] = None) -> torch.Tensor:
        mu = self.hp["mu"] if mu is None else mu
        return self.net.value(mu * x, w or self.net.weights()) / mu**2

    def reg_grad(self, x: torch.Tensor, mu=None, w: Optional[Weights] = None) -> torch.Tensor:
        """grad R(x) = grad g(mu x) / mu, differentiable in the parameters when grad mode is on."""
        mu = self.hp["mu"] if mu is None else mu
        return self.net.gradient(mu * x, w or self.net.weights()) / mu

    def regularizer(self, hyper, options, like) -> Regularizer:
        """R at hyper["mu"] with the constrained weights computed once for the whole solve."""
        mu, w = hyper["mu"], self.net.weights()
        return Regularizer(lambda x: self.energy(x, mu, w), grad=lambda x: self.reg_grad(x, mu, w), lipschitz=None)

    @torch.no_grad()
    def hessian_operator(self, x: torch.Tensor, lam: float, hyper: dict):
        """v -> (I + lam Hess R(x)) v with Hess R(x) = Hess g(mu x) (bilevel training's implicit gradient)."""
        mu = hyper["mu"]
        apply = self.net.hessian_vector(mu * x, self.net.weights())
        return lambda v: v + lam * apply(v)


class ICNN(ConvexCNNRegularizer):
    """The study's ICNN: one two-layer ICNN, 32 channels, 5x5 filters, fixed smoothing 0.01; convex."""

    def weak_convexity(self) -> float:
        return 0.0


class IDCNN(ConvexCNNRegularizer):
    """The study's IDCNN: ICNN_1 - ICNN_2, each with a learned smoothing; weakly convex."""

    signs = (1.0, -1.0)
    learn_smoothing = True

    def weak_convexity(self) -> float:
        """rho with R + rho/2 ||.||^2 convex: the Lipschitz bound of grad g_2 (the mu's cancel)."""
        return self.net.smoothness(1)
