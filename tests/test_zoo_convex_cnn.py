"""ICNN is convex and IDCNN weakly convex (not convex); their written-out derivatives are right; bilevel
training denoises better after a few steps; a solve ends at a stationary point."""

import math

import pytest
import torch
from deepinv.physics import Denoising, GaussianNoise

from regbench.methods.convex_cnn import ICNN, IDCNN
from regbench.solvers.options import SolverOptions
from regbench.training.schemes import load_scheme


def _random_model(factory, seed=0, channels=6):
    """Nontrivial weights: W_z's raw parameter of both signs (its square is what enters), unit output scales."""
    torch.manual_seed(seed)
    m = factory(channels=channels, mu=1.5).double()
    with torch.no_grad():
        m.net.wz_root.normal_(0.0, 0.15)
        m.net.bz.normal_(0.0, 0.1)
        m.net.log_scale.normal_(0.0, 0.3)
        if factory is IDCNN:
            m.net.log_smoothing.copy_(torch.tensor([math.log(0.02), math.log(0.05)]))
    return m


def _points(n, seed, size=12):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 1, size, size, generator=g, dtype=torch.float64) for _ in range(n)]


@torch.no_grad()
def _convexity_gaps(f, n=30):
    ends = zip(_points(n, 1), _points(n, 2), torch.rand(n, generator=torch.Generator().manual_seed(3)).tolist())
    return [t * float(f(a)) + (1 - t) * float(f(b)) - float(f(t * a + (1 - t) * b)) for a, b, t in ends]


@torch.no_grad()
def _curvatures(m, n=30, h=1e-4):
    """d^T Hess R(x) d / ||d||^2 by central differences of the gradient, at random x along random d."""
    g = torch.Generator().manual_seed(4)
    out = []
    for x in _points(n, 5):
        d = torch.randn(x.shape, generator=g, dtype=x.dtype)
        d = d / d.norm()
        out.append(float(((m.reg_grad(x + h * d) - m.reg_grad(x - h * d)) * d).sum() / (2 * h)))
    return out


def test_icnn_is_convex_along_random_segments():
    m = _random_model(ICNN)
    gaps = _convexity_gaps(m.reg_energy)
    assert min(gaps) > -1e-12
    assert max(gaps) > 1e-6  # and not affine: the test has something to find
    assert min(_curvatures(m)) > -1e-6


def test_idcnn_is_weakly_convex_within_its_bound_but_not_convex():
    m = _random_model(IDCNN)
    curvatures = _curvatures(m)
    assert min(curvatures) < 0  # a difference of convex functions: R alone is not convex
    rho = m.weak_convexity()
    assert min(curvatures) >= -rho
    assert min(_convexity_gaps(lambda x: m.reg_energy(x) + 0.5 * rho * (x**2).flatten(1).sum(1))) > -1e-12


@pytest.mark.parametrize("factory", [ICNN, IDCNN])
def test_derivatives_match_autograd_and_finite_differences(factory):
    m = _random_model(factory)
    x = torch.rand(2, 1, 10, 10, dtype=torch.float64, requires_grad=True)
    (g_auto,) = torch.autograd.grad(m.reg_energy(x).sum(), x, create_graph=True)
    assert torch.allclose(m.reg_grad(x.detach()), g_auto, atol=1e-10)
    d = torch.randn_like(x)
    with torch.no_grad():  # the energy's slope along d
        h = 1e-5
        slope = (m.reg_energy(x + h * d) - m.reg_energy(x - h * d)).sum() / (2 * h)
        along = (g_auto * d).sum()
    assert float(slope) == pytest.approx(float(along), rel=1e-6)
    (hv_auto,) = torch.autograd.grad((g_auto * d).sum(), x, retain_graph=True)
    hv = m.hessian_operator(x.detach(), 0.7, m.hp)(d) - d
    assert torch.allclose(hv, 0.7 * hv_auto, atol=1e-9)
    # the written-out gradient is differentiable in the parameters as the autograd one (bilevel training)
    params = [p for p in m.parameters() if p.requires_grad]
    mine = torch.autograd.grad((m.reg_grad(x.detach()) * d).sum(), params)
    reference = torch.autograd.grad((g_auto * d).sum(), params)
    assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(mine, reference))


class _Patches:
    """Piecewise-constant patches (random rectangles on a flat background), reproducible."""

    def __init__(self, seed=0):
        self.gen = torch.Generator().manual_seed(seed)

    def sample(self, batch, size):
        x = torch.full((batch, 1, size, size), 0.3)
        for b in range(batch):
            for _ in range(3):
                top, left = torch.randint(0, size - 4, (2,), generator=self.gen).tolist()
                x[b, :, top : top + 8, left : left + 8] = torch.rand(1, generator=self.gen).item()
        return x


def _denoising_psnr(m, x, y):
    physics = Denoising(GaussianNoise(sigma=25 / 255))
    x_hat, _ = m.reconstruct(y, physics, y, m.hp, SolverOptions(tol=1e-5, max_iter=300))
    return float(-10 * torch.log10(((x_hat - x) ** 2).mean()))


def test_bilevel_training_improves_denoising():
    torch.manual_seed(0)
    m = ICNN(channels=4)
    x = _Patches(seed=1).sample(4, 24)
    y = x + 25 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    before = _denoising_psnr(m, x, y)
    settings = dict(steps=8, batch=4, patch=24, sigma=25, inner_iters=30, inner_tol=1e-3, cg_iters=10)
    log = load_scheme("bilevel_ift").train(m, _Patches(), {**settings, "lr": 5e-2, "seed": 0}, progress=False)
    assert all(math.isfinite(v) for v in log["history"]["loss"])
    assert _denoising_psnr(m, x, y) > before + 2.0  # measured: 20.1 -> 24.3 dB


def test_solve_ends_at_a_stationary_point():
    m = _random_model(ICNN).float()
    x = _Patches(seed=3).sample(2, 20)
    y = x + 25 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    physics, hyper = Denoising(GaussianNoise(sigma=25 / 255)), {**m.hp, "lam": 0.05}
    x_hat, report = m.reconstruct(y, physics, y, hyper, SolverOptions(tol=1e-6, max_iter=1000))
    assert report.converged

    def stationarity(z):  # the energy's gradient, per image
        return (z - y + hyper["lam"] * m.reg_grad(z, hyper["mu"])).flatten(1).norm(dim=1)

    assert float((stationarity(x_hat) / stationarity(y)).max()) < 1e-2
