"""LSR: R >= 0 and vanishes at fixed points of f, its gradient is the closed form, any image size works,
and bilevel training improves denoising."""

import math

import pytest
import torch
from deepinv.physics import Denoising, GaussianNoise

from regbench.methods.lsr import LSR
from regbench.solvers.options import SolverOptions
from regbench.training.schemes import load_scheme

TINY = dict(nc=(4, 8, 16, 32), nb=1)


pytestmark = pytest.mark.usefixtures("one_thread")  # toy-sized tensors: one thread (conftest)


def lsr(**kwargs) -> LSR:
    return LSR(**{**TINY, **kwargs})


def test_energy_is_nonnegative_and_vanishes_exactly_at_fixed_points():
    method = lsr(mu=1.3)
    x = torch.rand(3, 1, 20, 28)
    with torch.no_grad():
        energy = method.energy(x)
        z = 1.3 * x
        direct = 0.5 * ((z - method.denoise(z)) ** 2).flatten(1).sum(1) / 1.3**2
    assert energy.shape == (3,) and (energy > 0).all()
    torch.testing.assert_close(energy, direct)
    # a zero output layer makes f the identity (residual form): every x is a fixed point, R and grad R vanish,
    # so neither the padding nor the noise-level channel leaks into the residual
    with torch.no_grad():
        method.net.m_tail.weight.zero_()
    reg = method.regularizer(method.hp, SolverOptions(), x)
    with torch.no_grad():
        assert torch.equal(reg.fn(x), torch.zeros(3)) and torch.equal(reg.grad(x), torch.zeros_like(x))


def test_same_seed_same_network_whatever_the_global_rng():
    torch.manual_seed(1)
    a = lsr()
    torch.manual_seed(2)
    b = lsr()
    assert all(torch.equal(p, q) for p, q in zip(a.net.state_dict().values(), b.net.state_dict().values()))
    assert not torch.equal(a.net.m_head.weight, lsr(init_seed=1).net.m_head.weight)


@pytest.mark.parametrize("shape", [(2, 1, 16, 24), (1, 1, 13, 21), (1, 1, 5, 3)])
def test_gradient_is_the_closed_form_and_matches_finite_differences(shape):
    """grad R(x) = (1/mu) (I - J_f(mu x))^T (mu x - f(mu x)), at sizes that need padding (reflect and, below
    the pad, replicate) as well as at a multiple of 8."""
    mu = 0.8
    method = lsr(mu=mu).double()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    v = torch.randn(shape, generator=g, dtype=torch.float64)
    with torch.no_grad():
        grad = method.regularizer(method.hp, SolverOptions(), x).grad(x)
    z = mu * x
    fz, vjp = torch.func.vjp(method.denoise, z)
    residual = (z - fz).detach()
    (jt_r,) = vjp(residual)
    torch.testing.assert_close(grad, (residual - jt_r) / mu, rtol=1e-10, atol=1e-12)
    h = 1e-5
    with torch.no_grad():
        slope = (method.energy(x + h * v) - method.energy(x - h * v)) / (2 * h)
    torch.testing.assert_close(slope, (grad * v).flatten(1).sum(1), rtol=1e-6, atol=1e-9)


def test_reconstructs_images_of_any_size():
    method = lsr().eval()
    y = torch.rand(1, 1, 37, 29)
    physics = Denoising(GaussianNoise(sigma=0.1))
    x_hat, info = method.reconstruct(y, physics, y, method.hp, SolverOptions(tol=1e-3, max_iter=20))
    assert x_hat.shape == y.shape and torch.isfinite(x_hat).all() and info.iterations >= 1


def _patches(size: int = 96):
    """Fixed smooth test patches: a few blurred random fields (the denoising needs only that they are smooth)."""
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(6, 1, size, size, generator=g)
    kernel = torch.ones(1, 1, 7, 7) / 49
    smooth = torch.nn.functional.conv2d(torch.nn.functional.pad(noise, (3, 3, 3, 3), mode="reflect"), kernel)
    return (smooth - smooth.amin()) / (smooth.amax() - smooth.amin())


class _Sampler:
    """The PatchSampler interface over fixed images (a seeded generator, crops, state for snapshots)."""

    def __init__(self, images):
        self.images, self.gen = images, torch.Generator().manual_seed(0)

    def state_dict(self):
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state):
        self.gen.set_state(state["gen"])

    def sample(self, batch: int, size: int) -> torch.Tensor:
        idx = torch.randint(len(self.images), (batch,), generator=self.gen)
        h, w = self.images.shape[-2:]
        top = torch.randint(h - size + 1, (batch,), generator=self.gen)
        left = torch.randint(w - size + 1, (batch,), generator=self.gen)
        return torch.stack([self.images[i, :, t : t + size, s : s + size] for i, t, s in zip(idx, top, left)])


def _psnr(method, x, y) -> float:
    x_hat, _ = method.reconstruct(y, Denoising(GaussianNoise(sigma=0.1)), y, method.hp, SolverOptions(max_iter=100))
    return float(-10 * torch.log10(((x_hat - x) ** 2).mean()))


def test_a_few_bilevel_steps_improve_denoising():
    images = _patches()
    x = images[:, :, :32, :32]
    y = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    method = lsr()
    noisy = float(-10 * torch.log10(((y - x) ** 2).mean()))
    before = _psnr(method, x, y)
    settings = dict(steps=30, batch=4, patch=24, sigma=25.5, lr=1e-2, inner_iters=30, inner_tol=1e-3, cg_iters=5)
    log = load_scheme("bilevel_ift").train(method, _Sampler(images[:, :, 32:, :]), settings, progress=False)
    after = _psnr(method, x, y)
    assert abs(before - noisy) < 0.5  # the residual form starts at R ~ 0: x* ~ y
    assert after > before + 1.0, (before, after)
    assert math.isfinite(log["history"]["psnr"][-1]) and set(log["history"]) >= {"lam", "mu"}
