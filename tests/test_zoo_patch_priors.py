"""The patch priors EPLL and PatchNR: the patch operator's adjoint, EM and maximum likelihood on synthetic
edge patches, exact gradients, an invertible flow, and denoising that beats the noisy input."""

import math

import pytest
import torch
from deepinv.physics import BlurFFT, Denoising, GaussianNoise
from deepinv.physics.functional.blur import gaussian_blur

from regbench.datasets.task import OperatorFacts
from regbench.methods.epll import EPLL, GaussianMixture, extract_patches, extract_patches_adjoint
from regbench.methods.patchnr import PatchNR
from regbench.solvers.options import SolverOptions

pytestmark = pytest.mark.usefixtures("one_thread")  # toy-sized tensors: one thread (conftest)


class EdgeImages:
    """A stand-in for PatchSampler: random crops of 16 images of 64 x 64 pixels, each a random
    piecewise-constant image (four random half-planes, each adding a random grey level)."""

    def __init__(self, seed: int = 0, n: int = 16, size: int = 64):
        self.gen = torch.Generator().manual_seed(seed)
        t = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
        yy, xx = torch.meshgrid(t, t, indexing="ij")
        angle = 2 * math.pi * torch.rand(n, 4, 1, 1, generator=self.gen)
        offset = (torch.rand(n, 4, 1, 1, generator=self.gen) - 0.5) * size
        level = 0.25 * torch.rand(n, 4, 1, 1, generator=self.gen)
        side = (xx * torch.cos(angle) + yy * torch.sin(angle) > offset).float()
        self.images = 0.25 + (side * level).sum(1, keepdim=True)  # (n, 1, size, size) in [0.25, 1.25]

    def sample(self, batch: int, size: int) -> torch.Tensor:
        n, _, h, w = self.images.shape
        idx = torch.randint(n, (batch,), generator=self.gen)
        top = torch.randint(h - size + 1, (batch,), generator=self.gen)
        left = torch.randint(w - size + 1, (batch,), generator=self.gen)
        return torch.stack([self.images[i, :, a : a + size, b : b + size] for i, a, b in zip(idx, top, left)])


def _edge_patches(n: int, size: int, seed: int) -> torch.Tensor:
    noise = torch.randn(n, size * size, generator=torch.Generator().manual_seed(seed))
    return EdgeImages(seed).sample(n, size).reshape(n, -1) + 0.01 * noise


@pytest.mark.parametrize("pad", ["reflect", "replicate", "none"])
def test_patch_extraction_adjoint_is_exact(pad):
    x = torch.randn(2, 1, 9, 11, dtype=torch.float64)
    rows = extract_patches(x, 4, pad)
    assert rows.shape == ((2, 6 * 8, 16) if pad == "none" else (2, 12 * 14, 16))
    r = torch.randn_like(rows)
    back = extract_patches_adjoint(r, x.shape, 4, pad)
    assert torch.allclose((rows * r).sum(), (x * back).sum(), rtol=1e-12)


def test_em_never_worsens_and_the_mixture_beats_one_gaussian_on_held_out_patches():
    train, test = _edge_patches(3000, 3, seed=0), _edge_patches(1000, 3, seed=1)
    mixture, single = GaussianMixture(8, 9, cov_reg=0.0), GaussianMixture(1, 9, cov_reg=0.0)
    log = mixture.em(train, 30, 0.0, torch.Generator().manual_seed(0), progress=False)
    single.em(train, 2, 0.0, torch.Generator().manual_seed(0), progress=False)
    # without a covariance floor each M-step is EM's exact maximizer: the likelihood never decreases
    assert all(b <= a + 1e-9 for a, b in zip(log["nll"], log["nll"][1:]))
    assert float(mixture.nll(test).mean()) < float(single.nll(test).mean()) - 2.0  # nats per patch
    assert torch.allclose(mixture.weights.sum(), torch.tensor(1.0))


def _fitted_epll(components: int = 6) -> EPLL:
    m = EPLL(patch_size=3, components=components, cov_reg=1e-4)
    m.fit(EdgeImages(0), {"seed": 0, "n_patches": 3000, "iters": 20, "tol": 1e-6, "crop": 12, "per_crop": 32}, False)
    return m.eval()


def test_epll_energy_and_gradient_match_an_independent_mixture_density():
    m = _fitted_epll().double()
    g = m.gmm
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=g.weights.double()),
        torch.distributions.MultivariateNormal(g.means.double(), covariance_matrix=g.covariances.double()),
    )
    x = (0.5 + 0.2 * torch.randn(2, 1, 10, 9, dtype=torch.float64)).requires_grad_(True)
    rows = extract_patches(x, 3, m.pad)
    reference = (-mix.log_prob(rows) - m.nll_offset).sum(1) / 9
    (expected,) = torch.autograd.grad(reference.sum(), x)
    assert torch.allclose(m.reg_energy(x.detach()), reference.detach(), rtol=1e-9)
    assert torch.allclose(m.reg_grad(x.detach()), expected, rtol=1e-7, atol=1e-9)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(float((a - b).pow(2).mean()))


@pytest.mark.parametrize("build", ["epll", "patchnr"])
def test_denoising_beats_the_noisy_input(build):
    """lam = sigma^2 (the MAP value) on a 24 x 24 edge image at sigma = 0.1, through the shared solver."""
    m = _fitted_epll() if build == "epll" else _trained_patchnr()[0]
    x = EdgeImages(5).sample(1, 24)
    sigma = 0.1
    y = x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    options = SolverOptions(tol=1e-4, max_iter=300, operator=OperatorFacts(identity=True, sqnorm=1.0))
    x_hat, report = m.reconstruct(y, Denoising(GaussianNoise(sigma)), y, m.hyper({"lam": sigma**2}), options)
    assert torch.isfinite(x_hat).all() and report.iterations > 1
    assert _psnr(x_hat, x) > _psnr(y, x) + 3.0


def test_epll_deblurs_through_a_general_linear_operator():
    """Any linear task, not only denoising: Gaussian blur (the solver estimates ||A||^2) at noise 0.02."""
    m = _fitted_epll()
    x = EdgeImages(5).sample(1, 24)
    physics = BlurFFT(img_size=(1, 24, 24), filter=gaussian_blur(sigma=1.0), noise_model=GaussianNoise(0.02))
    y = physics.A(x) + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    x_hat, report = m.reconstruct(y, physics, y, m.hyper({"lam": 0.02**2}), SolverOptions(tol=1e-4, max_iter=300))
    assert report.converged
    assert _psnr(x_hat, x) > _psnr(y, x) + 2.0


def _trained_patchnr(steps: int = 100):
    m = PatchNR(patch_size=3, layers=2, hidden=32)
    settings = {"seed": 0, "steps": steps, "batch": 64, "lr": 1e-2, "whiten_patches": 4000, "eval_patches": 1024}
    return m, m.fit(EdgeImages(0), settings, progress=False)


def test_flow_training_raises_the_held_out_likelihood_from_the_gaussian_start():
    m, log = _trained_patchnr()
    start, end = log["eval_nll"]
    assert end < start - 2.0  # nats per patch: the coupling blocks learn what the whitening Gaussian misses
    assert len(log["history"]["nll"]) == 100 and math.isfinite(float(m.nll_offset))


def _random_flow() -> PatchNR:
    m = PatchNR(patch_size=3, layers=2, hidden=16).double()
    g = torch.Generator().manual_seed(0)
    m.flow.set_whitening(torch.rand(2000, 9, generator=g, dtype=torch.float64))
    with torch.no_grad():  # away from the identity start
        for p in m.flow.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return m


def test_flow_is_invertible_and_its_log_determinant_is_the_jacobians():
    flow = _random_flow().flow
    x = torch.rand(6, 9, dtype=torch.float64)
    z, logdet = flow(x)
    assert torch.allclose(flow.inverse(z), x, atol=1e-10)
    jac = torch.autograd.functional.jacobian(lambda u: flow(u[None])[0][0], x[0])
    assert torch.allclose(logdet[0], torch.linalg.slogdet(jac)[1], atol=1e-9)


def test_patchnr_gradient_matches_finite_differences_and_the_value_pass():
    m = _random_flow()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, 8, 7, generator=g, dtype=torch.float64)
    v = torch.randn(x.shape, generator=g, dtype=torch.float64)
    value, grad = m.value_and_grad(x)
    assert torch.equal(value, m.value(x))  # the line search may take either
    eps = 1e-6
    with torch.no_grad():
        slope = (m.energy(x + eps * v) - m.energy(x - eps * v)) / (2 * eps)
    assert torch.allclose(slope, (grad * v).flatten(1).sum(1), rtol=1e-6)
