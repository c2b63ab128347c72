"""EPLL, the expected patch log-likelihood (Zoran & Weiss, ICCV 2011), as a smooth regularizer:

    R(x) = 1/d * sum_i ( -log p(P_i x) - c ),    p = sum_k w_k N(mu_k, Sigma_k)

P_i extracts the i-th of all overlapping patches of x (d = channels * patch_size^2 pixels each) after
reflect padding by patch_size - 1 pixels, so that border pixels lie in as many patches as the others
(or up to 4 times as many near corners; replicate padding, the study's, up to 12 times at 6x6). p is a
Gaussian mixture fitted to BSD400 patches by EM (`fit`). 1/d makes R a per-pixel quantity: the MAP
estimate under Gaussian noise of std sigma and the patch prior (each pixel counted d times, Zoran &
Weiss's approximation) is the minimizer at lam = sigma^2, hence the parameter-choice rule lam ~ sigma^2
(noise_power = 2). The MAP weight over-smooths: on a 64 x 64 BSD68 crop at sigma = 25/255, 0.25 and
0.5 sigma^2 gave 24.7 and 24.6 dB, sigma^2 22.3 dB (the study's lambda, converted, is 0.48 sigma^2); the
default is sigma^2 / 4, calibrated per task. c, the final mean negative log-likelihood of the training
patches, only shifts R towards 0 (the line search compares float32 energies).

`cov_reg` (added to every covariance) bounds the curvature: -log p has Hessian <= I / cov_reg, so the
solver's step and iteration count depend on it. 1e-4 (std 0.01, 2.5 grey levels: 1% of the noise
variance at sigma = 25/255), not deepinv's 1e-5: on a 64 x 64 BSD68 crop at sigma = 25/255 and lam =
sigma^2 / 2 the solve converged in 132 iterations (reflect padding) where 1e-5 with replicate padding
had not after 300, and 0.6 dB better.

Reconstruction: the comparative study of learned regularizers (Hertrich, Wong, Denker et al. 2025)
uses the mixture's negative log-likelihood as a regularizer in its own gradient solver; here the
shared APG solver minimizes 1/2 ||A x - y||^2 + lam R(x) with a line search (grad R has no global
Lipschitz bound: between components the curvature of -log p is not bounded below), so every linear
task works (denoising, CT, ...). Zoran & Weiss's half-quadratic splitting (deepinv.optim.EPLL) also
takes any linear operator (its x-update is a CG solve), but it anneals a coupling weight over five
steps from the noise level instead of minimizing a fixed energy.

The mixture's energy and gradient are exact, in float64, and per chunk of patches two matrix products:
the quadratic forms (x - mu_k)^T P_k (x - mu_k) of all components at once from the products x_i x_j
(P_k = Sigma_k^{-1}), then -log p(x) = -logsumexp_k(log w_k - 1/2 log det Sigma_k - d/2 log 2pi - 1/2
quad_k) and its gradient (sum_k gamma_k P_k) x - sum_k gamma_k P_k mu_k (gamma: the components' posterior
weights). EM's E-step shares the products with its M-step.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from regbench.methods.base import Hyper, Regularizer, VariationalMethod

LAM_DEFAULT = 0.25 * (25.0 / 255.0) ** 2  # a quarter of the MAP weight at the zoo's denoising noise level
CHUNK_FLOATS = 2**23  # float64s in a chunk's (rows x (components + d^2)) intermediates: ~64 MB


# -- patches of images --------------------------------------------------------------------------------------
PADS = ("reflect", "replicate", "none")


def extract_patches(x: torch.Tensor, size: int, pad: str) -> torch.Tensor:
    """All overlapping size x size patches of x (B, C, H, W) as rows (B, L, C * size^2), after padding by
    size - 1 on every side (`pad`: reflect or replicate; L = (H + size - 1) (W + size - 1)), or of x itself
    (`none`)."""
    if pad not in PADS:
        raise ValueError(f"pad={pad!r}; allowed: {', '.join(PADS)}")
    if pad != "none":
        p = size - 1
        x = F.pad(x, (p, p, p, p), mode=pad)
    return F.unfold(x, size).transpose(1, 2)


def extract_patches_adjoint(rows: torch.Tensor, shape: torch.Size, size: int, pad: str) -> torch.Tensor:
    """The adjoint of `extract_patches`: patch rows (B, L, d) summed back into an image of `shape`. The
    padding's adjoint is written out (border strips added to the pixels they copy), not autograd's
    scatter, so that it is deterministic on every device."""
    B, C, H, W = shape
    p = 0 if pad == "none" else size - 1
    img = F.fold(rows.transpose(1, 2), (H + 2 * p, W + 2 * p), size)
    if p == 0:
        return img
    return _unpad(_unpad(img, p, -2, H, pad), p, -1, W, pad)


def _unpad(img: torch.Tensor, p: int, dim: int, n: int, mode: str) -> torch.Tensor:
    """Adjoint of padding by p along `dim` (original size n): each border strip goes to the pixels it copies
    (replicate: the edge pixel; reflect: the mirrored pixels 1..p and n-1-p..n-2)."""
    core = img.narrow(dim, p, n).clone()
    before, after = img.narrow(dim, 0, p), img.narrow(dim, p + n, p)
    if mode == "replicate":
        core.narrow(dim, 0, 1).add_(before.sum(dim, keepdim=True))
        core.narrow(dim, n - 1, 1).add_(after.sum(dim, keepdim=True))
    else:
        core.narrow(dim, 1, p).add_(before.flip(dim))
        core.narrow(dim, n - 1 - p, p).add_(after.flip(dim))
    return core


def draw_patches(sampler, n: int, size: int, gen: torch.Generator, crop: int, per_crop: int) -> torch.Tensor:
    """n training patches as rows (n, C * size^2): `per_crop` patches at random positions of each of
    ceil(n / per_crop) random crop x crop crops (PatchSampler: random image, position, rotation and
    flip), dequantized by uniform noise of one grey level (the images are 8-bit: without it a flat
    patch has zero variance and the density a singular part). Drawing crops instead of single
    patches makes sampling ~per_crop times cheaper; crops are cut into patches 256 at a time."""
    per_crop = min(per_crop, (crop - size + 1) ** 2)
    out, left = [], n
    while left > 0:
        n_crops = min(256, -(-left // per_crop))
        rows = extract_patches(sampler.sample(n_crops, crop), size, "none")  # (n_crops, positions, d)
        pick = torch.argsort(torch.rand(n_crops, rows.shape[1], generator=gen), dim=1)[:, :per_crop]
        pick = pick.to(rows.device)[..., None].expand(-1, -1, rows.shape[2])
        out.append(torch.gather(rows, 1, pick).reshape(-1, rows.shape[2])[:left])
        left -= out[-1].shape[0]
    rows = torch.cat(out)
    return rows + ((torch.rand(rows.shape, generator=gen) - 0.5) / 255.0).to(rows)


# -- the Gaussian mixture -------------------------------------------------------------------------------
class GaussianMixture(torch.nn.Module):
    """A mixture of K Gaussians in dimension d: weights, means, covariances (Parameters without gradient,
    so that the method's parameter count is the mixture's size), fitted by `em`. Rows are evaluated
    around `center` (the training data's mean), in float64: the quadratic forms are differences of large
    numbers where a component is narrow."""

    def __init__(self, components: int, dim: int, cov_reg: float = 1e-4):
        super().__init__()
        self.K, self.d, self.cov_reg = int(components), int(dim), float(cov_reg)
        self.weights = torch.nn.Parameter(torch.full((self.K,), 1.0 / self.K), requires_grad=False)
        self.means = torch.nn.Parameter(torch.full((self.K, self.d), 0.5), requires_grad=False)
        self.covariances = torch.nn.Parameter(0.01 * torch.eye(self.d).repeat(self.K, 1, 1), requires_grad=False)
        self.register_buffer("center", torch.full((self.d,), 0.5))

    def factors(self) -> dict:
        """What an evaluation needs, in float64: the precisions P_k = Sigma_k^{-1} flattened (`Pf`: (K, d^2)) and
        as the coefficients of the upper-triangular products x_i x_j, off-diagonals doubled (`Pu`:
        (d(d+1)/2, K)), b_k = P_k (mu_k - center), e_k = b_k^T (mu_k - center) and the log normalizers
        with the weights (`logc`)."""
        cov = self.covariances.double()
        chol = torch.linalg.cholesky(cov)
        prec = torch.cholesky_inverse(chol)
        logdet = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        logc = torch.log(self.weights.double().clamp_min(1e-30)) - 0.5 * logdet - 0.5 * self.d * math.log(2 * math.pi)
        shifted = self.means.double() - self.center.double()
        b = torch.einsum("kij,kj->ki", prec, shifted)
        upper = torch.triu_indices(self.d, self.d, device=cov.device)
        doubled = 2.0 - (upper[0] == upper[1]).to(cov.dtype)
        return {
            "Pf": prec.reshape(self.K, -1),
            "Pu": (prec[:, upper[0], upper[1]] * doubled).T.contiguous(),
            "b": b,
            "e": (b * shifted).sum(1),
            "logc": logc,
            "upper": upper,
            "center": self.center.double(),
        }

    def chunk_rows(self) -> int:
        return int(min(4096, max(64, CHUNK_FLOATS // (self.K + self.d * self.d))))

    @staticmethod
    def products(rows: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
        """The products x_i x_j (i <= j, in `upper`'s row-major order) of each row (n, d(d+1)/2); a slice per i:
        4-5x faster than gathering both factors."""
        return torch.cat([rows[:, i : i + 1] * rows[:, i:] for i in range(rows.shape[1])], 1)

    def _log_joint(self, centered: torch.Tensor, f: dict, products: torch.Tensor | None = None) -> torch.Tensor:
        """log w_k N(x; mu_k, Sigma_k) per row and component (n, K) of float64 rows around `center`:
        (x - mu_k)^T P_k (x - mu_k) = sum_{i<=j} x_i x_j (2 - [i=j]) P_k,ij - 2 b_k^T x + e_k, one matrix product."""
        products = self.products(centered, f["upper"]) if products is None else products
        quad = torch.addmm(f["e"], products, f["Pu"]) - 2.0 * centered @ f["b"].T
        return f["logc"] - 0.5 * quad

    def nll(self, rows: torch.Tensor, f: dict | None = None) -> torch.Tensor:
        """-log p of each row of (n, d), by chunks, in float64."""
        f = f or self.factors()
        out = [-torch.logsumexp(self._log_joint(c.double() - f["center"], f), 1) for c in rows.split(self.chunk_rows())]
        return torch.cat(out)

    def nll_and_grad(self, rows: torch.Tensor, f: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(-log p per row in float64, its gradient sum_k gamma_k P_k (x - mu_k) per row in the rows' dtype), by
        chunks: one pass gives both."""
        f = f or self.factors()
        values, grads = [], []
        for c in rows.split(self.chunk_rows()):
            centered = c.double() - f["center"]
            logj = self._log_joint(centered, f)
            lse = torch.logsumexp(logj, 1)
            gamma = torch.exp(logj - lse[:, None])
            mixed = (gamma @ f["Pf"]).view(-1, self.d, self.d)  # sum_k gamma_k P_k per row
            grads.append(torch.bmm(mixed, centered[:, :, None]).squeeze(-1) - gamma @ f["b"])
            values.append(-lse)
        return torch.cat(values), torch.cat(grads).to(rows.dtype)

    @torch.no_grad()
    def em(self, data: torch.Tensor, iters: int, tol: float, gen: torch.Generator, progress: bool = True) -> dict:
        """Fit to the rows of `data` (n, d) by EM from K random data points as means, the data's
        covariance for every component and equal weights; stops after `iters` iterations or when the
        mean negative log-likelihood improves by less than `tol`. In float64 around the data mean (no
        cancellation in E[x x^T] - mu mu^T); a component that keeps fewer than d points keeps its
        parameters. Returns the mean negative log-likelihood before each M-step."""
        n, d = data.shape
        if n < self.K:
            raise ValueError(f"EM needs at least as many patches as components: {n} patches, {self.K} components")
        center = sum(c.double().sum(0) for c in data.split(self.chunk_rows())) / n
        self.center.copy_(center)
        self.means.copy_(data[torch.randperm(n, generator=gen)[: self.K].to(data.device)])
        cov = sum((c.double() - center).T @ (c.double() - center) for c in data.split(self.chunk_rows())) / n
        self.covariances.copy_(cov + self.cov_reg * torch.eye(d, dtype=torch.float64, device=data.device))
        self.weights.fill_(1.0 / self.K)
        history = []
        for _ in tqdm(range(iters), desc="EM", disable=not progress, mininterval=5):
            f = self.factors()
            count = torch.zeros(self.K, dtype=torch.float64, device=data.device)
            first = torch.zeros(self.K, d, dtype=torch.float64, device=data.device)
            second = torch.zeros(self.K, f["upper"].shape[1], dtype=torch.float64, device=data.device)
            total = torch.zeros((), dtype=torch.float64, device=data.device)
            for rows in data.split(self.chunk_rows()):
                centered = rows.double() - center
                products = self.products(centered, f["upper"])
                logj = self._log_joint(centered, f, products)
                lse = torch.logsumexp(logj, 1)
                gamma = torch.exp(logj - lse[:, None])
                total -= lse.sum()
                count += gamma.sum(0)
                first += gamma.T @ centered
                second += gamma.T @ products
            history.append(float(total) / n)
            self._m_step(count, first, second, f["upper"], center, n)
            if len(history) > 1 and history[-2] - history[-1] < tol:
                break
        return {"nll": history}

    def _m_step(self, count, first, second, upper, center, n: int) -> None:
        """Weights, means and covariances from the posterior-weighted sums around `center`."""
        d = self.d
        keep = count >= d  # too few points for a covariance of full rank: the component stays as it was
        mean = first / count.clamp_min(1e-30)[:, None]
        cov = torch.zeros(self.K, d, d, dtype=torch.float64, device=count.device)
        cov[:, upper[0], upper[1]] = second / count.clamp_min(1e-30)[:, None]
        cov = cov + torch.triu(cov, diagonal=1).transpose(1, 2)
        cov = (
            cov - mean[:, :, None] * mean[:, None, :] + self.cov_reg * torch.eye(d, dtype=cov.dtype, device=cov.device)
        )
        weights = torch.where(keep, count / n, self.weights.double())
        self.weights.copy_(weights / weights.sum())
        self.means.copy_(torch.where(keep[:, None], mean + center, self.means.double()))
        self.covariances.copy_(torch.where(keep[:, None, None], cov, self.covariances.double()))


# -- values and gradients reused by the line search ----------------------------------------------------------
def reusing_regularizer(value_and_grad, value) -> Regularizer:
    """R for the shared solver from `value_and_grad(x) -> (R(x), grad R(x))` and `value(x)`: the line search
    asks for R(z) right after grad R(z), at the same tensor, and gets the value that pass computed."""
    last: dict = {}

    def grad(x: torch.Tensor) -> torch.Tensor:
        v, g = value_and_grad(x)
        last.update(x=x, version=x._version, value=v)
        return g

    def fn(x: torch.Tensor) -> torch.Tensor:
        if last.get("x") is x and last["version"] == x._version:
            return last["value"]
        return value(x)

    return Regularizer(fn, grad=grad, lipschitz=None)


# -- the method ----------------------------------------------------------------------------------------------
class EPLL(VariationalMethod):
    trainable = True
    hyperparameters = {"lam": Hyper(LAM_DEFAULT, span=10.0, calibrate=True, noise_power=2.0)}
    learned_hyperparameters = ()  # EM fits the mixture; lam is calibrated

    def __init__(
        self,
        patch_size: int = 6,
        components: int = 300,
        channels: int = 1,
        pad: str = "reflect",
        cov_reg: float = 1e-4,
        **hyper: float,
    ):
        super().__init__(**hyper)
        if pad not in PADS:
            raise ValueError(f"pad={pad!r}; allowed: {', '.join(PADS)}")
        self.patch_size, self.channels, self.pad = int(patch_size), int(channels), pad
        self.gmm = GaussianMixture(components, self.channels * self.patch_size**2, cov_reg)
        self.register_buffer("nll_offset", torch.zeros(()))

    @property
    def dim(self) -> int:
        return self.gmm.d

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        return extract_patches(x, self.patch_size, self.pad)

    def _total(self, nll: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """R per image from the float64 NLL of its patches, summed in float64 (thousands of terms) and cast."""
        return ((nll.view(rows.shape[:2]) - self.nll_offset.double()).sum(1) / self.dim).to(rows.dtype)

    def _value(self, x: torch.Tensor, f: dict) -> torch.Tensor:
        rows = self._rows(x)
        return self._total(self.gmm.nll(rows.reshape(-1, self.dim), f), rows)

    def _value_and_grad(self, x: torch.Tensor, f: dict) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self._rows(x)
        nll, g = self.gmm.nll_and_grad(rows.reshape(-1, self.dim), f)
        grad = extract_patches_adjoint(g.view(rows.shape), x.shape, self.patch_size, self.pad) / self.dim
        return self._total(nll, rows), grad

    @torch.no_grad()
    def reg_energy(self, x: torch.Tensor) -> torch.Tensor:
        """R(x) per image, shape (B,)."""
        return self._value(x, self.gmm.factors())

    @torch.no_grad()
    def reg_grad(self, x: torch.Tensor) -> torch.Tensor:
        return self._value_and_grad(x, self.gmm.factors())[1]

    def reg_lipschitz(self) -> None:
        """None: the curvature of -log p is at most 1 / cov_reg, but between components it is unbounded below."""
        return None

    @torch.no_grad()
    def regularizer(self, hyper, options, like) -> Regularizer:
        """R with the mixture's factors computed once per solve."""
        f = self.gmm.factors()
        return reusing_regularizer(lambda x: self._value_and_grad(x, f), lambda x: self._value(x, f))

    def differentiable_reconstruct(self, y, physics, x0, x_ref, hyper, options):
        """No unrolled path without a step bound: the worst-case probe searches at random."""
        return None

    # -- training -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def fit(self, patches, settings: dict, progress: bool = True) -> dict:
        """EM on `n_patches` BSD400 patches (drawn `per_crop` at a time from `crop` x `crop` crops) for at
        most `iters` iterations (stop: improvement < `tol` nats per patch), as the study (deepinv's EM, 6x6
        patches, 50 iterations, tolerance 1e-4); then c = the final mean negative log-likelihood."""
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(int(settings.get("seed", 0)) + 1)
        data = draw_patches(
            patches,
            int(settings["n_patches"]),
            self.patch_size,
            gen,
            crop=int(settings.get("crop", 32)),
            per_crop=int(settings.get("per_crop", 128)),
        )
        log = self.gmm.em(data, int(settings["iters"]), float(settings.get("tol", 1e-4)), gen, progress)
        self.nll_offset.fill_(float(self.gmm.nll(data).mean()))
        log["nll"].append(float(self.nll_offset))
        return {"minutes": (time.perf_counter() - t0) / 60, "steps": len(log["nll"]) - 1, "history": log}
