"""CNN (the study's LAR) and NETT: exact gradients, trainings that do what they claim, solves that descend."""

import deepinv as dinv
import pytest
import torch
from conftest import compose

from regbench.datasets.bsds500 import BSDS500
from regbench.datasets.images import center_crop
from regbench.datasets.patches import PatchSampler
from regbench.methods.cnn import CNN
from regbench.methods.nett import NETT
from regbench.solvers.options import SolverOptions
from regbench.training import checkpoints
from regbench.training.schemes import load_scheme

SIGMA = 25 / 255
SMALL = {"cnn": lambda: CNN(channels=(1, 8, 8, 8, 8, 8, 8, 1)), "nett": lambda: NETT(hidden=8, blocks=1)}


def _psnr(x, ref) -> float:
    return float(-10 * torch.log10(((x - ref) ** 2).mean()))


def _budget(name: str, **over) -> dict:
    """The method's smoke training settings under its default scheme, with overrides."""
    cfg = compose(f"method={name}", "profile=smoke")
    spec = checkpoints.training_spec(cfg.method, "smoke", 0)
    return {**spec["train"], "seed": 0, "scheme": spec["training"], **over}


pytestmark = pytest.mark.usefixtures("one_thread")  # toy-sized tensors: one thread (conftest)


@pytest.fixture(scope="module")
def crops():
    """Four 32x32 BSD68 crops (never trained on), their noisy versions at sigma=25/255 and that physics."""
    test = BSDS500(split="bsd68", root=None, download=False)
    x = torch.stack([center_crop(test.load(i), 32) for i in test.ids()[:4]])
    y = x + SIGMA * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    return x, y, dinv.physics.Denoising(dinv.physics.GaussianNoise(SIGMA))


@pytest.fixture(scope="module")
def patches():
    return PatchSampler(BSDS500(split="train400", root=None, download=False), n_images=8, seed=0)


@pytest.fixture(scope="module")
def trained(patches, crops):
    """Both methods at small widths before and after a short training under their default schemes."""
    x, y, _ = crops
    out = {}
    for name, steps, over in (("cnn", 20, {"batch": 16}), ("nett", 40, {"batch": 8, "lr": 1e-2})):
        method = SMALL[name]()
        with torch.no_grad():
            before = (method.energy(x).mean().item(), method.energy(y).mean().item())
        budget = _budget(name, steps=steps, **over)
        log = load_scheme(budget["scheme"]).train(method, patches, budget, progress=False)
        out[name] = {"method": method.eval(), "before": before, "log": log}
    return out


@pytest.mark.parametrize("name", ["cnn", "nett"])
def test_gradient_matches_finite_differences(name):
    method = SMALL[name]().double()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, 20, 20, generator=g, dtype=torch.float64)
    v = torch.randn(x.shape, generator=g, dtype=torch.float64)
    assert method.energy(x).shape == (2,)
    with torch.no_grad():
        grad = method.reg_grad(x)
        eps = 1e-5
        fd = (method.energy(x + eps * v) - method.energy(x - eps * v)) / (2 * eps)
    assert torch.allclose(fd, (grad * v).flatten(1).sum(1), rtol=1e-6, atol=1e-9)


def test_cnn_sums_one_window_per_pixel_and_vanishes_on_zero():
    method = SMALL["cnn"]()
    x = torch.rand(3, 1, 17, 23)
    assert method.windows(x).shape == x.shape  # every pixel centres one 15x15 window
    assert torch.allclose(method.energy(x), method.windows(x).flatten(1).sum(1))
    zero = torch.zeros(2, 1, 30, 30, dtype=torch.float64)
    assert method.double().energy(zero).abs().max() < 1e-10  # anchored: R(0) = 0 (up to rounding)
    tiny = torch.rand(1, 1, 4, 4, dtype=torch.float64)  # smaller than the padding: replicated, not reflected
    assert method.energy(tiny).shape == (1,)


def test_adversarial_training_ranks_clean_below_noisy(trained, crops):
    x, y, _ = crops
    run = trained["cnn"]
    method, (clean0, noisy0) = run["method"], run["before"]
    with torch.no_grad():
        clean, noisy = method.energy(x).mean().item(), method.energy(y).mean().item()
    assert clean < noisy and noisy - clean > noisy0 - clean0, (clean0, noisy0, clean, noisy)
    assert run["log"]["history"]["gap"][-1] > 0  # the critic's Wasserstein estimate in training
    assert 0 < method.hp["lam"] < float("inf")  # set from the trained critic (stationarity at clean patches)


def test_nett_fit_lowers_its_loss_and_separates_clean_from_noisy(trained, crops):
    x, y, _ = crops
    run = trained["nett"]
    method, (clean0, noisy0) = run["method"], run["before"]
    loss = torch.tensor(run["log"]["history"]["loss"])
    assert loss[-10:].mean() < 0.7 * loss[:10].mean()
    assert 0.25 < sum(run["log"]["history"]["noisy"]) / len(loss) < 0.75  # about half the patches carry noise
    with torch.no_grad():
        clean, noisy = method.energy(x).mean().item(), method.energy(y).mean().item()
    assert noisy > 2 * clean and noisy0 < 1.5 * clean0, (clean0, noisy0, clean, noisy)


@pytest.mark.parametrize("name", ["cnn", "nett"])
def test_solve_lowers_the_energy(trained, crops, name):
    _, y, physics = crops
    method = trained[name]["method"]
    lam = 10.0

    def energy(z):
        with torch.no_grad():
            return 0.5 * (z - y).pow(2).flatten(1).sum(1) + lam * method.energy(z)

    x_hat, info = method.reconstruct(y, physics, y, method.hyper({"lam": lam}), SolverOptions(tol=1e-4, max_iter=200))
    assert info.iterations >= 1 and torch.isfinite(x_hat).all()
    assert (energy(x_hat) < energy(y)).all()


def test_trained_nett_denoises(trained, crops):
    x, y, physics = crops
    method = trained["nett"]["method"]
    x_hat, _ = method.reconstruct(y, physics, y, method.hyper({"lam": 10.0}), SolverOptions(tol=1e-4, max_iter=200))
    assert _psnr(x_hat, x) > _psnr(y, x) + 2.0, (_psnr(y, x), _psnr(x_hat, x))


@pytest.mark.parametrize(
    "name, schemes",
    [
        ("cnn", ["adversarial_local", "adversarial", "bilevel_jfb", "bilevel_ift", "score"]),
        ("nett", ["method_fit", "bilevel_jfb", "bilevel_ift", "score"]),
    ],
)
def test_schemes_that_apply(name, schemes):
    method = SMALL[name]()
    assert [s for s in schemes if load_scheme(s).incompatibility(method)] == []
    assert load_scheme("denoiser_mse").incompatibility(method) is not None
