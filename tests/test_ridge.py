"""CRR is convex and WCRR 1-weakly convex by construction; gradients and norms are right."""

import pytest
import torch

from regbench.methods.ridge import CRR, WCRR


def _random_model(factory, seed=0, scale=2.0):
    torch.manual_seed(seed)
    m = factory(mu=3.0).double()
    with torch.no_grad():
        m.spline.raw.normal_(0.0, scale)
        m.spline.raw[:, 15:25] -= 6.0  # flat / concave middle: sparsity-like profiles
    return m


def _segments(n=30, seed=1):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        a = torch.rand(1, 1, 24, 24, generator=g, dtype=torch.float64)
        b = torch.rand(1, 1, 24, 24, generator=g, dtype=torch.float64)
        t = float(torch.rand(1, generator=g))
        yield a, b, t


@torch.no_grad()
def _convexity_gaps(f):
    return [t * float(f(a)) + (1 - t) * float(f(b)) - float(f(t * a + (1 - t) * b)) for a, b, t in _segments()]


def test_crr_energy_is_convex_along_random_segments():
    m = _random_model(CRR)
    assert m.weak_convexity() == 0.0
    assert min(_convexity_gaps(m.reg_energy)) > -1e-9


def test_wcrr_is_one_weakly_convex_but_not_convex():
    m = _random_model(WCRR)
    assert 0.5 < m.weak_convexity() <= 1.0  # some slopes are negative, none below -1
    gaps = _convexity_gaps(lambda x: m.reg_energy(x) + 0.5 * (x**2).sum())
    assert min(gaps) > -1e-9
    # the bound is tight enough to matter: R alone is not convex on some segment
    g = torch.Generator().manual_seed(3)
    a = 0.5 + 0.01 * torch.randn(1, 1, 24, 24, generator=g, dtype=torch.float64)
    b = a + 0.2 * torch.randn(1, 1, 24, 24, generator=g, dtype=torch.float64)
    with torch.no_grad():
        mid, ends = m.reg_energy(0.5 * (a + b)), 0.5 * (m.reg_energy(a) + m.reg_energy(b))
    assert float(mid) > float(ends)


@pytest.mark.parametrize("factory", [CRR, WCRR])
def test_gradient_matches_autograd_of_the_energy(factory):
    m = _random_model(factory)
    x = torch.rand(2, 1, 20, 20, dtype=torch.float64, requires_grad=True)
    (g_auto,) = torch.autograd.grad(m.reg_energy(x).sum(), x)
    assert torch.allclose(m.reg_grad(x.detach()), g_auto, atol=1e-10)


def test_normalized_filters_have_norm_at_most_one():
    m = _random_model(CRR)
    norm = m.W.spectral_norm()
    v = torch.randn(1, 1, 64, 64, dtype=torch.float64)
    for _ in range(150):  # power iteration on W^T W
        v = m.W.adjoint(m.W(v))
        v = v / v.norm()
    measured = float(m.W(v).norm() / norm)
    assert 0.95 < measured <= 1.0


def test_spline_potential_integrates_its_derivative():
    m = _random_model(WCRR)
    t = torch.linspace(-1.3, 1.3, 2601, dtype=torch.float64).view(1, 1, -1, 1).expand(1, 60, -1, 1)
    psi, phi = m.spline.potential(t), m.spline.derivative(t)
    dt = float(t[0, 0, 1, 0] - t[0, 0, 0, 0])
    trapezoid = torch.cumsum(0.5 * dt * (phi[:, :, 1:] + phi[:, :, :-1]), dim=2)
    assert torch.allclose(psi[:, :, 1:] - psi[:, :, :1], trapezoid, atol=1e-6)
    assert float(m.spline.potential(torch.zeros(1, 60, 1, 1, dtype=torch.float64)).abs().max()) == 0.0


def test_state_dict_round_trip_keeps_output_and_hyperparameters():
    m = _random_model(WCRR)
    m.hp["lam"] = 3.7
    clone = WCRR().double()
    clone.load_state_dict(m.state_dict())
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    assert clone.hp["lam"] == 3.7
    assert torch.equal(clone.reg_grad(x), m.reg_grad(x))


def test_hessian_vector_product_matches_double_backprop():
    from regbench.training.schemes.bilevel import conjugate_gradient

    m = _random_model(WCRR)
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    v = torch.randn_like(x)
    xr = x.clone().requires_grad_(True)
    (hv,) = torch.autograd.grad(m.reg_grad(xr), xr, v)
    lam = 0.7
    hessian = m.hessian_operator(x, lam, m.hp)
    assert torch.allclose(hessian(v), v + lam * hv, atol=1e-12)
    sol = conjugate_gradient(hessian, v, 300, tol=1e-12)
    assert float((hessian(sol) - v).norm()) < 1e-9


@pytest.mark.parametrize("factory", [CRR, WCRR])
def test_lipschitz_bound_is_attained_and_tighter_than_the_largest_slope(factory):
    """With one slope per channel, Hess R at 0 is W^T diag(s_c) W / ||W||^2: power iteration on it comes
    within 10% of reg_lipschitz and never above it, and the bound is well below the largest slope."""
    torch.manual_seed(0)
    m = factory(mu=3.0).double()
    with torch.no_grad():
        slopes = torch.rand(60, dtype=torch.float64) * 2.0
        slopes[:5] = 6.0  # a few steep channels
        m.spline.raw.copy_(torch.log(torch.expm1(slopes - m.spline.min_slope))[:, None].expand_as(m.spline.raw))
    bound = m.reg_lipschitz()
    assert bound < 0.9 * float(m.spline.slopes().max())
    x = torch.zeros(1, 1, 64, 64, dtype=torch.float64)  # features 0: inside the knots, every channel at its slope
    hessian = m.hessian_operator(x, 1.0, m.hp)  # v -> v + Hess R v
    v = torch.randn(1, 1, 64, 64, dtype=torch.float64)
    for _ in range(80):
        v = hessian(v) - v
        v = v / v.norm()
    curvature = float((hessian(v) - v).norm())
    assert 0.9 * bound < curvature <= bound


@pytest.mark.parametrize("factory", [CRR, WCRR])
def test_compiled_energy_and_gradient_match_the_eager_ones(factory):
    m = _random_model(factory, scale=1.0).float()
    x = torch.rand(2, 1, 24, 24)
    energy, grad = m.reg_energy(x), m.reg_grad(x)
    assert torch.allclose(m.frozen_energy(m.hp["mu"], x)(x), energy, rtol=1e-5)
    assert torch.allclose(m.frozen_gradient(m.hp["mu"], x)(x), grad, rtol=1e-4, atol=1e-6)
