"""PatchNR (Altekrueger, Denker, Hagemann, Hertrich, Maass, Steidl, Inverse Problems 2023): a normalizing
flow on small patches as a regularizer,

    R(x) = 1/d * sum_i ( -log p_theta(P_i x) - c ),    -log p_theta(u) = 1/2 ||f(u)||^2 - log |det J_f(u)| + d/2 log 2pi

P_i: all overlapping patches after reflect padding, 1/d (d pixels per patch), lam (sigma^2: the MAP
value; default a quarter of it) and c (the final mean negative log-likelihood of held-out patches) as
in EPLL (regbench.methods.epll); the patches are all of them, not a random subset, so that R is a
deterministic function of x that the line search can trust.

The flow f, x -> z, is a fixed whitening by the training patches' Gaussian fit, z0 = L^{-1}(x - m)
(Sigma = L L^T), then `layers` GLOW affine coupling blocks (deepinv's GLOWCouplingBlock: two affine
couplings with soft-clamped log-scales, clamp 1.6, each driven by an MLP with two hidden layers of
`hidden` units, as PatchNR's FrEIA flow), with a fixed random permutation of the coordinates after
each block (FrEIA's PermuteRandom). The coupling MLPs' last layers start at zero, so training starts
from the Gaussian fit and the flow learns what is not Gaussian about patches (the paper's flow learns
the whitening as well; here it is given, which saves most of a small budget).

Two departures keep the solves short and reliable. The MLPs' activations are SiLU (smooth), not
PatchNR's ReLU: with ReLU grad R jumps wherever a unit switches and the line search shrinks the step to
nothing (a 64 x 64 BSD68 crop at sigma = 25/255, lam = sigma^2 / 2, flows of 3000 steps: ReLU stopped at
step 1e-5, unconverged after 300 iterations; softplus and SiLU converged in 201 and 311; PSNR within
0.1 dB). SiLU rather than softplus, whose outputs are all positive: from the zero-initialized last
layers it learns far slower (synthetic edges, 100 steps: 3.9 nats per patch gained against 0.1).
And the training patches carry Gaussian noise of std `noise` (0.01, 2.5 grey levels, besides the
dequantization): the flow then models patches smoothed at that scale, whose -log p has curvature of
about 1 / noise^2 at most, where 8-bit patches alone make it arbitrarily stiff (EPLL's `cov_reg`, the
same idea).

Training: maximum likelihood on BSD400 patches, Adam with cosine decay to lr / 100, as the comparative
study of learned regularizers (Hertrich, Wong, Denker et al. 2025: 6x6 patches, 5 blocks of 512 hidden
units, batch 1024, lr 5e-4, 20 epochs of the patches of 400 crops of 128 x 128).

The gradient is by autograd through the flow, per chunk of patches, and summed back into the image
by the exact adjoint of the patch extraction; it has no Lipschitz bound (NeuralRegularizer): the
shared solver finds its step by line search, for any linear task.
"""

from __future__ import annotations

import math

import torch
from deepinv.optim.prior import GLOWCouplingBlock

from regbench.methods.base import Hyper, Regularizer
from regbench.methods.epll import (
    LAM_DEFAULT,
    PADS,
    draw_patches,
    extract_patches,
    extract_patches_adjoint,
    reusing_regularizer,
)
from regbench.methods.neural import NeuralRegularizer
from regbench.training.loop import TrainingLoop

ACTIVATIONS = {"relu": torch.nn.ReLU, "softplus": torch.nn.Softplus, "silu": torch.nn.SiLU}
CHUNK_UNITS = 2**20  # patches per chunk times hidden units: bounds the activations kept for the backward pass


def _mlp(hidden: int, activation: str):
    act = ACTIVATIONS[activation]

    def make(c_in: int, c_out: int) -> torch.nn.Sequential:
        return torch.nn.Sequential(
            torch.nn.Linear(c_in, hidden), act(), torch.nn.Linear(hidden, hidden), act(), torch.nn.Linear(hidden, c_out)
        )

    return make


class PatchFlow(torch.nn.Module):
    """x (n, d) -> (z, log |det J|): whitening, then coupling blocks each followed by a fixed permutation."""

    def __init__(
        self, dim: int, layers: int, hidden: int, clamp: float = 1.6, activation: str = "silu", perm_seed: int = 0
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r}; allowed: {', '.join(ACTIVATIONS)}")
        self.dim, self.hidden = int(dim), int(hidden)
        self.blocks = torch.nn.ModuleList(
            GLOWCouplingBlock(self.dim, _mlp(self.hidden, activation), clamp) for _ in range(layers)
        )
        g = torch.Generator().manual_seed(perm_seed)
        self.register_buffer("perms", torch.stack([torch.randperm(self.dim, generator=g) for _ in range(layers)]))
        self.register_buffer("shift", torch.zeros(self.dim))
        self.register_buffer("white", torch.eye(self.dim))  # L^{-1}, lower triangular
        self.register_buffer("white_logdet", torch.zeros(()))
        self.reset(0)

    @torch.no_grad()
    def reset(self, seed: int) -> None:
        """Coupling MLPs drawn from PyTorch's default init with a seeded generator, their last layers zero:
        every block starts as the identity."""
        g = torch.Generator().manual_seed(int(seed))
        for block in self.blocks:
            for net in (block.subnet1, block.subnet2):
                for layer in net:
                    if isinstance(layer, torch.nn.Linear):
                        bound = 1.0 / math.sqrt(layer.in_features)  # kaiming-uniform with a = sqrt(5)
                        layer.weight.copy_(torch.rand(layer.weight.shape, generator=g) * 2 * bound - bound)
                        layer.bias.copy_(torch.rand(layer.bias.shape, generator=g) * 2 * bound - bound)
                net[-1].weight.zero_()
                net[-1].bias.zero_()

    @torch.no_grad()
    def set_whitening(self, data: torch.Tensor, reg: float = 1e-6) -> None:
        """z0 = L^{-1} (x - m) with m, L L^T the mean and covariance (+ reg I) of the rows of `data`."""
        d64 = data.double()
        mean = d64.mean(0)
        eye = torch.eye(self.dim, dtype=torch.float64, device=data.device)
        chol = torch.linalg.cholesky((d64 - mean).T @ (d64 - mean) / data.shape[0] + reg * eye)
        white = torch.linalg.solve_triangular(chol, eye, upper=False)
        self.shift.copy_(mean)
        self.white.copy_(white)
        self.white_logdet.copy_(-torch.log(torch.diagonal(chol)).sum())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = (x - self.shift) @ self.white.T
        logdet = self.white_logdet.expand(x.shape[0])
        for block, perm in zip(self.blocks, self.perms):
            z, ld = block(z)
            z = z[:, perm]
            logdet = logdet + ld
        return z, logdet

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        for block, perm in zip(reversed(self.blocks), reversed(self.perms)):
            z, _ = block(z[:, torch.argsort(perm)], rev=True)
        return torch.linalg.solve_triangular(self.white, z.T, upper=False).T + self.shift

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """-log p(x) per row (nats)."""
        z, logdet = self(x)
        return 0.5 * z.pow(2).sum(1) - logdet + 0.5 * self.dim * math.log(2 * math.pi)

    def chunk_rows(self) -> int:
        return max(256, CHUNK_UNITS // self.hidden)


class PatchNR(NeuralRegularizer):
    hyperparameters = {"lam": Hyper(LAM_DEFAULT, span=10.0, calibrate=True, noise_power=2.0)}
    learned_hyperparameters = ()  # maximum likelihood fits the flow; lam is calibrated

    def __init__(
        self,
        patch_size: int = 6,
        layers: int = 5,
        hidden: int = 512,
        channels: int = 1,
        pad: str = "reflect",
        clamp: float = 1.6,
        activation: str = "silu",
        noise: float = 0.01,
        **hyper: float,
    ):
        super().__init__(**hyper)
        if pad not in PADS:
            raise ValueError(f"pad={pad!r}; allowed: {', '.join(PADS)}")
        self.patch_size, self.pad, self.noise = int(patch_size), pad, float(noise)
        self.flow = PatchFlow(int(channels) * self.patch_size**2, layers, hidden, clamp, activation)
        self.register_buffer("nll_offset", torch.zeros(()))

    @property
    def dim(self) -> int:
        return self.flow.dim

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """R(x) per image, shape (B,); differentiable (autograd through the patches and the flow)."""
        rows = extract_patches(x, self.patch_size, self.pad)
        nll = torch.cat([self.flow.nll(c) for c in rows.reshape(-1, self.dim).split(self.flow.chunk_rows())])
        return self._total(nll, rows)

    def _total(self, nll: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """R per image from the NLL of its patches, summed in float64 (thousands of terms) and cast."""
        return ((nll.double().view(rows.shape[:2]) - self.nll_offset.double()).sum(1) / self.dim).to(rows.dtype)

    @torch.no_grad()
    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy(x)

    def value_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(R(x), grad R(x)) without a graph: autograd per chunk of patch rows, then the adjoint of the
        patch extraction (deterministic on every device)."""
        rows = extract_patches(x.detach(), self.patch_size, self.pad)
        values, grads = [], []
        with torch.enable_grad():
            for c in rows.reshape(-1, self.dim).split(self.flow.chunk_rows()):
                c = c.detach().requires_grad_(True)
                nll = self.flow.nll(c)
                (g,) = torch.autograd.grad(nll.sum(), c)
                values.append(nll.detach())
                grads.append(g)
        value = self._total(torch.cat(values), rows)
        grad = extract_patches_adjoint(torch.cat(grads).view(rows.shape), x.shape, self.patch_size, self.pad)
        return value, grad / self.dim

    def reg_grad(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:  # keep the graph (differentiable in x and the weights)
            return super().reg_grad(x)
        return self.value_and_grad(x)[1]

    def regularizer(self, hyper, options, like) -> Regularizer:
        """R whose gradient pass also gives the line search its value at the same point."""
        if torch.is_grad_enabled():
            return super().regularizer(hyper, options, like)
        return reusing_regularizer(self.value_and_grad, self.value)

    # -- training -------------------------------------------------------------------------------------------
    def fit(self, patches, settings: dict, progress: bool = True) -> dict:
        """Maximum likelihood on BSD400 patches plus Gaussian noise of std `noise`: `steps` Adam steps of
        `batch` patches at lr `lr`, cosine decay to lr / 100; the whitening from `whiten_patches` patches
        first. Logs the training NLL per step and the NLL of a fixed held-out set of `eval_patches` patches
        before and after (`eval_nll`)."""
        steps, batch, lr = int(settings["steps"]), int(settings["batch"]), float(settings["lr"])
        seed, size = int(settings.get("seed", 0)), self.patch_size
        gen = torch.Generator().manual_seed(seed + 1)
        self.flow.reset(seed)

        def draw(n: int, crop: int, per_crop: int) -> torch.Tensor:
            rows = draw_patches(patches, n, size, gen, crop, per_crop)
            return rows + self.noise * torch.randn(rows.shape, generator=gen).to(rows)

        self.flow.set_whitening(draw(int(settings.get("whiten_patches", 50000)), 32, 128))
        held_out = draw(int(settings.get("eval_patches", 4096)), 32, 128)
        eval_start = self._mean_nll(held_out)
        opt = torch.optim.Adam(self.flow.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(k, steps) / max(steps, 1)))
        )
        loop = TrainingLoop(
            "patchnr", steps, opt, sched, settings, progress, show=("nll",), flow=self.flow, gen=gen, patches=patches
        )

        def step(k: int) -> dict:
            loss = self.flow.nll(draw(batch, 2 * size, 16)).mean()
            loss.backward()
            return {"nll": loss.item()}

        self.flow.train()
        log = loop.run(step)
        self.flow.eval()
        self.nll_offset.fill_(self._mean_nll(held_out))
        log["eval_nll"] = [eval_start, float(self.nll_offset)]
        return log

    @torch.no_grad()
    def _mean_nll(self, rows: torch.Tensor) -> float:
        return float(torch.cat([self.flow.nll(c) for c in rows.split(self.flow.chunk_rows())]).double().mean())
