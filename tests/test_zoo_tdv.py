"""TDV: constant images cost nothing, gradients and Hessian-vector products are right, any image size
works, and bilevel training improves denoising."""

import math

import pytest
import torch

from regbench.methods.tdv import TDV
from regbench.solvers.apg import apg
from regbench.training.schemes.bilevel import ImplicitBilevel, hessian_system

pytestmark = pytest.mark.usefixtures("one_thread")  # toy-sized tensors: one thread (conftest)


def _model(**kwargs):
    return TDV(**{"features": 4, "macro_blocks": 2, "scales": 3, "init_seed": 1, "mu": 1.7, **kwargs}).double()


def _image(h=23, w=17, batch=2, seed=0):
    return torch.rand(batch, 1, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_energy_ignores_constant_images_borders_included():
    m, x = _model(), _image()
    with torch.no_grad():
        r = m.energy(x)
        assert (r > 0).all()
        assert torch.allclose(m.energy(x + 0.37), r, rtol=1e-12, atol=0)
        assert m.energy(torch.full_like(x, 0.6)).abs().max() < 1e-20


def test_gradient_matches_finite_differences_in_x_and_mu():
    m, x = _model(), _image()
    d = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=x.dtype)
    h = 1e-6
    with torch.no_grad():
        fd = (m.energy(x + h * d) - m.energy(x - h * d)) / (2 * h)
        g = m.gradient(x)
    assert torch.allclose((g * d).flatten(1).sum(1), fd, rtol=1e-6)
    mu = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)  # learned in training: differentiable
    (dmu,) = torch.autograd.grad(m.energy(x, mu).sum(), mu)
    with torch.no_grad():
        fd_mu = (m.energy(x, 1.7 + h).sum() - m.energy(x, 1.7 - h).sum()) / (2 * h)
    assert math.isclose(float(dmu), float(fd_mu), rel_tol=1e-6)


def test_hessian_vector_products_match_finite_differences_of_the_gradient():
    """bilevel_ift's CG runs on autograd HVPs through the network (no hand-written operator)."""
    m, x = _model(), _image()
    v = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=x.dtype)
    lam, h = 2.0, 1e-5
    hv = hessian_system(m, x, lam, m.hp)(v)
    with torch.no_grad():
        fd = v + lam * (m.gradient(x + h * v) - m.gradient(x - h * v)) / (2 * h)
    assert torch.allclose(hv, fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("size", [(5, 9), (23, 17), (33, 32), (40, 40)])
def test_any_image_size_without_padding_or_cropping(size):
    """Stride-2 steps down to ceil(H/2), transposed steps back to exactly H: no size is padded or cropped."""
    m = _model()
    x = _image(*size, batch=1)
    assert m.net(x).shape == x.shape
    g = m.gradient(x)
    assert g.shape == x.shape and torch.isfinite(g).all()


def _denoised_psnr(m, x, y):
    lam, mu = m.hp["lam"], m.hp["mu"]
    with torch.no_grad():
        z, _ = apg(
            y,
            lambda z: z - y + lam * m.gradient(z, mu),
            f_value=lambda z: 0.5 * ((z - y) ** 2).flatten(1).sum(1) + lam * m.energy(z, mu),
            tol=1e-5,
            max_iter=300,
        )
    return float(-10 * torch.log10(((z - x) ** 2).mean()))


def test_a_few_bilevel_steps_improve_denoising():
    """Piecewise-smooth patches at sigma 25/255: ten IFT steps raise the PSNR of the minimizer."""
    torch.manual_seed(0)
    m = TDV(features=4, macro_blocks=1, scales=2, init_seed=0, lam=3.0)
    u = torch.linspace(0, 1, 32)
    x = torch.stack([(u[:, None] > 0.4) * 0.6 + 0.2 * u[None, :], 0.3 + 0.4 * (u[:, None] + u[None, :] > 1)])[:, None]
    y = x + 25 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    before = _denoised_psnr(m, x, y)
    log_lam = torch.nn.Parameter(torch.tensor(math.log(m.hp["lam"])))
    opt = torch.optim.Adam([{"params": list(m.parameters()), "lr": 1e-2}, {"params": [log_lam], "lr": 5e-2}])
    settings = {"inner_iters": 100, "inner_tol": 1e-4, "cg_iters": 10}
    for _ in range(10):
        opt.zero_grad()
        hyper = {"lam": log_lam.exp(), "mu": m.hp["mu"]}
        ImplicitBilevel().batch_loss(
            m,
            x,
            y,
            hyper,
            {k: float(v.detach()) if torch.is_tensor(v) else v for k, v in hyper.items()},
            settings,
            None,
        )
        opt.step()
    m.hp["lam"] = log_lam.exp().item()
    after = _denoised_psnr(m, x, y)
    assert after > before + 1.0, (before, after)
