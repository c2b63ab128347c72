"""DEAL, PnP and the diffusion samplers: they learn, iterate and sample as claimed."""

import deepinv as dinv
import pytest
import torch
from conftest import compose, run_of, solve_with

from regbench.core.instantiate import build
from regbench.datasets.bsds500 import BSDS500
from regbench.datasets.images import center_crop
from regbench.datasets.patches import PatchSampler
from regbench.datasets.task import OperatorFacts
from regbench.methods.base import data_lipschitz
from regbench.methods.deal import DEAL, deal_network
from regbench.methods.denoisers import Preconditioned
from regbench.methods.diffusion import DPS, DiffPIR
from regbench.methods.pnp import PnP
from regbench.training import checkpoints
from regbench.training.schemes import load_scheme, seeded_init

SIGMA = 25 / 255


def _psnr(x, ref) -> float:
    return float(-10 * torch.log10(((x - ref) ** 2).mean()))


@pytest.fixture(scope="module")
def crops():
    """Four fixed 32x32 BSD68 crops, their noisy versions at sigma=25/255 and that physics."""
    test = BSDS500(split="bsd68", root=None, download=False)
    x = torch.stack([center_crop(test.load(i), 32) for i in test.ids()[:4]])
    physics = dinv.physics.Denoising(dinv.physics.GaussianNoise(SIGMA))
    y = x + SIGMA * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    return x, y, physics


@pytest.fixture(scope="module")
def patches():
    return PatchSampler(BSDS500(split="train400", root=None, download=False), n_images=8, seed=0)


def _smoke(name: str, **budget):
    """A new method at smoke size and its smoke training budget (with overrides)."""
    cfg = compose(f"method={name}", "profile=smoke")
    spec = checkpoints.training_spec(cfg.method, "smoke", 0)
    return build(cfg.method.model), {**spec["train"], "seed": 0, "scheme": spec["training"], **budget}


def _fit(method, patches, budget) -> dict:
    """Train `method` under its default scheme (`budget["scheme"]`)."""
    return load_scheme(budget["scheme"]).train(method, patches, budget, progress=False)


@pytest.mark.parametrize("name", ["pnp_drunet", "diffpir", "dps"])
def test_trained_denoiser_beats_its_untrained_self(name, crops, patches):
    x, y, _ = crops
    method, budget = _smoke(name, steps=30, lr=2e-3)
    seeded_init(method.denoiser, 0)  # exactly the weights training starts from
    with torch.no_grad():
        before = _psnr(method.denoiser(y, SIGMA), x)
    log = _fit(method, patches, budget)
    with torch.no_grad():
        after = _psnr(method.denoiser(y, SIGMA), x)
    assert after > before + 0.5, (before, after)
    assert after > _psnr(y, x) + 1.0  # and it denoises
    assert len(log["history"]["loss"]) > 0 and log["steps"] == 30


def test_deal_training_improves_its_reconstruction(crops):
    x, y, physics = crops
    patches = PatchSampler(
        BSDS500(split="train400", root=None, download=False), n_images=8, seed=0
    )  # its own: order-free
    method, budget = _smoke("deal", steps=40)
    seeded_init(method.net, 0)
    before = _psnr(solve_with(method.eval(), y, physics, y)[0], x)
    _fit(method, patches, budget)
    after = _psnr(solve_with(method.eval(), y, physics, y)[0], x)
    assert after > before + 1.0 and after > _psnr(y, x) + 1.0, (before, after, _psnr(y, x))


def test_deal_at_paper_size_is_deepinvs_network():
    ours = deal_network().state_dict()
    theirs = dinv.models.DEAL(pretrained=None, device="cpu").model.state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert DEAL(channels=[1, 4, 8, 32]).n_params() < DEAL().n_params()


def test_deal_reconstructs_any_linear_problem_with_finite_output_of_the_right_shape(crops):
    x, _, _ = crops
    method = DEAL(channels=[1, 4, 8, 16], kernel_size=5, outer_iters=5).eval()
    physics = dinv.physics.BlurFFT(
        img_size=(1, 32, 32),
        filter=dinv.physics.functional.gaussian_blur(sigma=1.0),
        noise_model=dinv.physics.GaussianNoise(0.02),
    )
    y = physics(x)
    out, info = solve_with(method, y, physics, physics.A_adjoint(y))
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert 1 <= info.iterations <= 5 and info.converged is not None and info.rel_change == info.rel_change


def test_deal_as_trained_reconstructs_with_the_map_training_fits(crops, patches, monkeypatch):
    """fixed_point=as_trained is the training's map (its mask updates, then a precise solve), not the
    fixed point: training and reconstruction call the same trained_map, with the budget's update count."""
    x, y, physics = crops
    method, budget = _smoke("deal", steps=2)
    seen = []
    original = DEAL.trained_map

    def spy(self, rhs, x0, lam, gram, iters, *rest):
        seen.append(iters)
        return original(self, rhs, x0, lam, gram, iters, *rest)

    monkeypatch.setattr(DEAL, "trained_map", spy)
    _fit(method, patches, budget)
    assert seen == [budget["outer_iters"]] * 2  # one forward per training step
    method.eval()
    as_trained, info = solve_with(method, y, physics, y, fixed_point="as_trained", outer_iters=2)
    assert seen[-1] == 2 and info.converged is None and 1 <= info.iterations <= 2  # a fixed map: no convergence
    with torch.no_grad():
        sigma = torch.full((y.shape[0], 1, 1, 1), method.hp["sigma"])
        lam = method.hp["lam"] * method._condition(sigma) * data_lipschitz(OperatorFacts.of(physics), physics, y)
        expected, _, _ = original(method, y, y, lam, lambda v: v, 2, method.cg_iters, method.tol, method.cg_tol)
    assert torch.equal(as_trained, expected)
    assert solve_with(method, y, physics, y)[1].converged is not None  # the fixed point reports its convergence
    with pytest.raises(ValueError, match="fixed_point='unrolled'; expected 'converged' or 'as_trained'"):
        solve_with(method, y, physics, y, fixed_point="unrolled")


def test_deal_reconstructs_each_profile_with_its_training_update_count():
    for profile in ("smoke", "cpu", "paper"):
        run = run_of("method=deal", f"profile={profile}")
        options = run.method.options
        budget = run.method.config.train.budget[profile]
        assert options == {"fixed_point": "as_trained", "outer_iters": budget.outer_iters, "cg_tol": budget.cg_tol}


def test_deal_splines_pick_their_segment_as_in_exact_arithmetic_in_any_precision():
    """deepinv's LinearSpline picks the extrapolation segment by how (x_max - step - x_min) / step rounds:
    float32 and float64 disagree beyond the last knot. Ours: deepinv's values inside, the last segment beyond."""
    from deepinv.models.deal import LinearSpline

    from regbench.methods.deal import KnotExactLinearSpline

    theirs = LinearSpline(num_activations=2, num_knots=31, x_min=0.0, x_max=3.0, init="identity", clamp=False)
    theirs.coefficients.data = torch.randn(2, 31, generator=torch.Generator().manual_seed(0)).cumsum(1)
    ours = KnotExactLinearSpline(num_activations=2, num_knots=31, x_min=0.0, x_max=3.0, init="identity", clamp=False)
    ours.coefficients.data = theirs.coefficients.data.clone()
    inside = 2.9 * torch.rand(4, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(ours(inside), theirs(inside))
    beyond = torch.full((1, 2, 1, 1), 4.3)
    c = ours.projected_coefficients
    last_segment = c[:, 30] + (4.3 - 3.0) / 0.1 * (c[:, 30] - c[:, 29])
    assert torch.allclose(ours(beyond).flatten(), last_segment, rtol=1e-5)
    assert torch.allclose(ours.double()(beyond.double()).flatten(), last_segment.double(), rtol=1e-5)


def test_deal_reconstructs_alike_in_float32_and_float64(crops):
    """The mask splines' segment choice made float64 (and CUDA) read 0.07 dB off float32 on the CPU."""
    x, y, physics = crops
    method = DEAL(channels=[1, 4, 8, 16], kernel_size=5).eval()
    seeded_init(method.net, 0)
    with torch.no_grad():  # mask activations well past the splines' last knot (x_max = 3)
        method.net.M1.conv_layers[-1].weight.mul_(30.0)
        method.net.M2.weight.mul_(10.0)
    gen = torch.Generator().manual_seed(0)
    for name in ("spline1", "spline2", "spline3"):  # slopes that differ from segment to segment
        spline = getattr(method.net, name)
        spline.coefficients.data = 0.1 * torch.rand(spline.coefficients.shape, generator=gen).cumsum(1)
    method.hp.update(lam=1.0, sigma=25.0)
    options = {"fixed_point": "as_trained", "outer_iters": 2, "cg_tol": 1e-5}
    single, _ = solve_with(method, y, physics, y, **options)
    double, _ = solve_with(method.double(), y.double(), physics, y.double(), **options)
    assert float((single.double() - double).norm() / double.norm()) < 1e-4


def test_anderson_mixing_solves_a_linear_fixed_point_in_a_few_steps():
    from regbench.methods.deal import anderson_mix

    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    M = (
        q @ torch.diag(torch.tensor([0.95, -0.9, 0.5], dtype=torch.float64)) @ q.T
    )  # plain iteration: ~300 steps to 1e-8
    b = torch.randn(3, dtype=torch.float64)
    solution = torch.linalg.solve(torch.eye(3, dtype=torch.float64) - M, b)
    x, xs, gs = torch.zeros(3, dtype=torch.float64), [], []
    for _ in range(6):  # from 4 pairs on the residual differences span R^3
        xs, gs = (xs + [x])[-5:], (gs + [M @ x + b])[-5:]
        x = anderson_mix(xs, gs)
    assert float((x - solution).norm() / solution.norm()) < 1e-8


def test_deal_anderson_reaches_the_plain_fixed_point_no_slower(crops, monkeypatch):
    """Same fixed point; never more outer iterations, even where the plain iteration converges fast
    (an untrained network); on trained weights it takes a third fewer (see DEAL.fixed_point)."""
    import regbench.methods.deal as deal

    x, y, physics = crops
    method = (
        DEAL(channels=[1, 4, 8, 16], kernel_size=5, outer_iters=100, cg_iters=100, tol=1e-7, cg_tol=1e-9)
        .double()
        .eval()
    )
    seeded_init(method.net, 0)
    method.hp.update(lam=1.0, sigma=5.0)
    found = {}
    for depth in (0, deal.ANDERSON_DEPTH):
        monkeypatch.setattr(deal, "ANDERSON_DEPTH", depth)
        found[depth] = solve_with(method, y.double(), physics, y.double())
    (plain, plain_info), (fast, fast_info) = found[0], found[deal.ANDERSON_DEPTH]
    assert plain_info.converged and fast_info.converged
    assert fast_info.iterations <= plain_info.iterations, (fast_info, plain_info)
    assert float((fast - plain).norm() / plain.norm()) < 1e-6


def test_deal_equilibrium_gradient_matches_finite_differences():
    """The implicit (CG) backward of the equilibrium step is the derivative of the least-squares
    solution x*(theta) = (I + lam W^T m^2 W)^-1 y, masks taken at a fixed input."""
    torch.manual_seed(0)
    method = DEAL(channels=[1, 4, 8], kernel_size=3).double()
    y, target, mask_input = (torch.rand(1, 1, 8, 8, dtype=torch.float64) for _ in range(3))
    sigma = torch.full((1, 1, 1, 1), 25.0, dtype=torch.float64)
    weight = method.net.W1.conv_layers[1].weight

    def solution():
        with torch.no_grad():
            lam = method._condition(sigma)
            A = method.normal_operator(method.net.cal_mask(mask_input), lam)
            return dinv.optim.linear.conjugate_gradient(A, y, max_iter=500, tol=1e-12)

    out = method.equilibrium_step(y, solution(), mask_input, sigma, cg_iters=500, cg_tol=1e-12)
    ((out - target) ** 2).sum().backward()
    direction = torch.randn(weight.shape, dtype=torch.float64)
    analytic = float((weight.grad * direction).sum())
    eps = 1e-6
    with torch.no_grad():
        weight += eps * direction
    plus = float(((solution() - target) ** 2).sum())
    with torch.no_grad():
        weight -= 2 * eps * direction
    minus = float(((solution() - target) ** 2).sum())
    assert analytic == pytest.approx((plus - minus) / (2 * eps), rel=1e-4)


def _denoiser():
    net = dinv.models.DRUNet(1, 1, nc=[8, 16, 32, 64], nb=1, pretrained=None)
    den = Preconditioned(net)
    seeded_init(den, 0)
    return den.eval()


def test_preconditioned_denoiser_is_the_identity_at_zero_noise_and_the_mean_at_huge_noise():
    den = _denoiser()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(den(x, 0.0), x, atol=1e-3)
        far = den(x + 100.0 * torch.randn_like(x), 100.0)
    assert (far - den.data_mean).abs().max() < 0.3  # bounded whatever the untrained network does


def test_pnp_with_one_iteration_is_the_denoiser_at_strength_times_sigma(crops):
    x, y, physics = crops
    method = PnP(_denoiser(), strength=0.8, iterations=1)
    out, info = solve_with(method, y, physics, y)
    with torch.no_grad():
        assert torch.allclose(out, method.denoiser(y, 0.8 * SIGMA), atol=1e-6)
    assert info.iterations == 1


def test_pnp_hqs_iterations_fill_in_an_inpainting_problem(crops):
    """With a fixed denoiser (deepinv's TV denoiser) HQS with the DPIR schedule recovers
    missing pixels, and iterating matters: 8 iterations beat 1 by far."""
    x, _, _ = crops
    physics = dinv.physics.Inpainting(
        img_size=(1, 32, 32),
        mask=0.5,
        noise_model=dinv.physics.GaussianNoise(0.02),
        rng=torch.Generator().manual_seed(0),
    )
    y = physics(x)
    x0 = physics.A_adjoint(y)
    denoiser = dinv.models.TVDenoiser(n_it_max=50)
    one = _psnr(solve_with(PnP(denoiser, iterations=1), y, physics, x0)[0], x)
    many = _psnr(solve_with(PnP(denoiser, iterations=8), y, physics, x0)[0], x)
    assert many > _psnr(x0, x) + 5 and many > one + 3, (_psnr(x0, x), one, many)


@pytest.mark.parametrize("sampler", [DiffPIR, DPS])
def test_samplers_are_reproducible_per_seed(sampler, crops):
    x, y, physics = crops
    method = sampler(_denoiser())
    state = torch.random.get_rng_state()
    a, info = solve_with(method, y, physics, y, steps=4, seed=3)
    b, _ = solve_with(method, y, physics, y, steps=4, seed=3)
    c, _ = solve_with(method, y, physics, y, steps=4, seed=4)
    assert torch.equal(a, b) and not torch.allclose(a, c, atol=1e-4)
    assert a.shape == y.shape and torch.isfinite(a).all() and info.iterations == 4
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    with pytest.raises(ValueError, match="at least 2 steps"):
        solve_with(method, y, physics, y, steps=1)


def test_every_new_method_declares_family_hyperparameters_and_convergence_support():
    expected = {"deal": "variational", "pnp_drunet": "denoiser", "diffpir": "sampler", "dps": "sampler"}
    for name, family in expected.items():
        cfg = compose(f"method={name}", "profile=smoke")
        method = build(cfg.method.model)
        assert method.family == family and method.trainable and not method.energy_based
        assert method.calibration_space() and method.n_params() > 0
        assert method.stochastic == (family == "sampler")
        cpu = checkpoints.spec_of(run_of(f"method={name}", "profile=cpu"))
        assert cpu["train"]["steps"] > 100 and cpu["training"] == cfg.method.train.scheme


def test_bf16_precision_runs_only_the_network_in_bfloat16_and_restores_it():
    from regbench.methods.denoisers import precision

    den = _denoiser()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        full = den(x, 0.1)
        with precision(den, True):
            half = den(x, 0.1)
            assert half.dtype == torch.float32
        assert den.bf16 is False and torch.equal(den(x, 0.1), full)
    assert 0 < (half - full).abs().max() < 1e-2


class _LevelSpy(torch.nn.Module):
    """A denoiser that records the noise level of each call and returns its input."""

    def __init__(self):
        super().__init__()
        self.levels = []

    def forward(self, x, sigma):
        self.levels.append(float(sigma))
        return x


def test_diffpir_from_the_measurement_starts_at_its_noise_level_on_denoising_only(crops):
    """start=measurement: the first denoiser call sees the measurement's noise level (y is a
    forward-process sample there) and every step lies below it; off denoising, and with
    start=noise, the sampler runs deepinv's whole schedule from pure noise."""
    x, y, physics = crops
    spy = _LevelSpy()
    out, _ = solve_with(DiffPIR(spy), y, physics, y, steps=6, seed=0, start="measurement")
    assert len(spy.levels) == 6 and torch.isfinite(out).all() and out.shape == y.shape
    assert abs(spy.levels[0] - SIGMA) < 0.03 * SIGMA, spy.levels
    assert spy.levels == sorted(spy.levels, reverse=True) and spy.levels[-1] < 0.01
    spy.levels.clear()
    solve_with(DiffPIR(spy), y, physics, y, steps=6, seed=0, start="noise")
    assert spy.levels[0] > 50  # pure noise
    blur = dinv.physics.BlurFFT(
        (1, 1, 32, 32), dinv.physics.blur.gaussian_blur(1.0), noise_model=dinv.physics.GaussianNoise(0.01)
    )
    spy.levels.clear()
    solve_with(DiffPIR(spy), blur(x), blur, blur(x), steps=6, seed=0, start="measurement")
    assert spy.levels[0] > 50
    with pytest.raises(ValueError, match="start='late'; expected one of noise, measurement"):
        solve_with(DiffPIR(spy), y, physics, y, steps=6, start="late")
