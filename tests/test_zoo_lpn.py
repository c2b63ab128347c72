"""LPN (Fang, Buchanan & Sulam 2024): its denoiser is the gradient of a convex potential, hence a
proximal operator; PnP-ADMM with it reduces to f(y) on denoising; its training lowers the loss."""

import deepinv as dinv
import pytest
import torch
from conftest import compose

from regbench.core.instantiate import build
from regbench.datasets.bsds500 import BSDS500
from regbench.datasets.patches import PatchSampler
from regbench.methods import lpn
from regbench.solvers.options import SolverOptions
from regbench.training import checkpoints

P = 16  # patch size of the toy networks


pytestmark = pytest.mark.usefixtures("one_thread")  # toy-sized tensors: one thread (conftest)


def _net(seed: int = 0, **kw) -> lpn.ProximalNetwork:
    """A toy network in float64 whose nonnegative weights are far from their near-zero init (some stored
    negative: the forward clamps them) and whose softplus is mild, so psi is far from quadratic."""
    torch.manual_seed(seed)
    net = lpn.ProximalNetwork(hidden=6, features=5, patch=P, beta=kw.pop("beta", 4.0), **kw).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in net.nonneg():
            layer.weight.copy_(torch.rand(layer.weight.shape, generator=g, dtype=torch.float64) - 0.3)
    return net


def _convexity_gap(net, n: int = 64) -> float:
    """The largest violation of psi(t a + (1-t) b) <= t psi(a) + (1-t) psi(b) over random segments."""
    g = torch.Generator().manual_seed(1)
    a, b = (torch.rand(n, 1, P, P, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(2))
    t = torch.rand(n, generator=g, dtype=torch.float64)
    tt = t.view(-1, 1, 1, 1)
    with torch.no_grad():
        lhs = net.psi(tt * a + (1 - tt) * b)
        rhs = t * net.psi(a) + (1 - t) * net.psi(b)
    return float((lhs - rhs).max())


def test_potential_is_convex_along_random_segments():
    assert _convexity_gap(_net()) <= 1e-10


def test_convexity_check_fails_without_the_nonnegative_clamp(monkeypatch):
    """The check above has teeth: with the stored (partly negative) weights used as they are, psi is not convex."""
    raw = lambda self, z: torch.nn.functional.conv2d(z, self.weight, self.bias, self.stride, self.padding)
    monkeypatch.setattr(lpn.NonnegConv, "forward", raw)
    net = _net()
    with torch.no_grad():
        for layer in net.nonneg():
            layer.weight.sub_(0.5)
    assert _convexity_gap(net) > 1e-2


def test_f_is_the_gradient_of_the_potential():
    """Central differences of the [0, 1] potential along random directions match <f(x), d>, and f is the
    study's map (grad psi(2x - 1) + 1) / 2."""
    net = _net()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 1, P, P, generator=g, dtype=torch.float64)
    d = torch.randn(x.shape, generator=g, dtype=torch.float64)
    h = 1e-5
    with torch.no_grad():
        f = net(x)
        fd = (net.potential(x + h * d) - net.potential(x - h * d)) / (2 * h)
    torch.testing.assert_close(fd, (f * d).flatten(1).sum(1), rtol=1e-6, atol=1e-8)
    xs = (2 * x - 1).requires_grad_(True)
    (grad,) = torch.autograd.grad(net.psi(xs).sum(), xs)
    torch.testing.assert_close(f, (grad + 1) / 2)


def test_f_is_monotone():
    net = _net()
    g = torch.Generator().manual_seed(3)
    a, b = (torch.rand(32, 1, P, P, generator=g, dtype=torch.float64) for _ in range(2))
    with torch.no_grad():
        inner = ((net(a) - net(b)) * (a - b)).flatten(1).sum(1)
    assert (inner >= -1e-12).all()
    assert (inner > 0).all()  # strictly: psi is strongly convex (alpha > 0)


def test_images_are_denoised_by_averaged_overlapping_patches():
    net = _net()
    x = torch.rand(2, 1, P + P // 2 + 3, P, dtype=torch.float64)  # rows start at 0, P/2, and flush with the end
    with torch.no_grad():
        out = net(x)
        expected = torch.zeros_like(x)
        count = torch.zeros_like(x)
        for i in (0, P // 2, x.shape[-2] - P):
            expected[..., i : i + P, :] += net.prox(x[..., i : i + P, :])
            count[..., i : i + P, :] += 1
        torch.testing.assert_close(out, expected / count)
        small = net(x[..., :10, :12])  # smaller than a patch: padded, then cropped back
    assert small.shape == (2, 1, 10, 12) and torch.isfinite(small).all()


def test_one_admm_iteration_on_denoising_is_the_prox_of_y():
    """The study's denoising protocol (f applied once to y) is PnP-ADMM's first iteration from x0 = y."""
    method = lpn.LPN(denoiser=_net().float())
    physics = dinv.physics.Denoising(dinv.physics.GaussianNoise(0.1))
    y = torch.rand(2, 1, 40, 24, generator=torch.Generator().manual_seed(4))
    hyper = method.hyper({"iterations": 1, "lam": 3.0, "relax": 1.0})
    x, report = method.reconstruct(y, physics, y, hyper, SolverOptions())
    with torch.no_grad():
        torch.testing.assert_close(x, method.denoiser(y), rtol=1e-5, atol=1e-6)
    relaxed, _ = method.reconstruct(y, physics, y, method.hyper({"iterations": 1, "relax": 0.5}), SolverOptions())
    torch.testing.assert_close(relaxed, 0.5 * x + 0.5 * y, rtol=1e-5, atol=1e-6)
    assert report.iterations == 1


@pytest.mark.parametrize("loss", ["pm", "l2"])
def test_training_lowers_the_denoising_error_and_keeps_psi_convex(loss):
    cfg = compose("method=lpn", "profile=smoke")
    spec = checkpoints.training_spec(cfg.method, "smoke", 0)
    method = build(cfg.method.model)
    net = method.denoiser
    patches = PatchSampler(BSDS500(split="train400", root=None, download=False), n_images=4, seed=0)
    x = PatchSampler(BSDS500(split="train400", root=None, download=False), n_images=4, seed=9).sample(8, net.patch)
    y = x + net.sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    budget = {**spec["train"], "seed": 0, "steps": 40, "loss": loss, "pretrain_lr": 3e-3, "lr": 3e-3}

    def mse() -> float:
        with torch.no_grad():
            return float((net(y) - x).pow(2).mean())

    lpn.seeded_init(net, 0)  # the weights training starts from
    net.init_nonneg(0)
    before = mse()
    log = method.fit(patches, budget, progress=False)
    assert len(log["history"]["loss"]) == 40
    assert mse() < 0.5 * before
    assert all((layer.weight >= 0).all() for layer in net.nonneg())  # projected at the end
