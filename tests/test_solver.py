"""The shared APG solver: reaches known minimizers and decreases the energy."""

import torch

from regbench.methods.ridge import CRR
from regbench.methods.tv import TV
from regbench.solvers.apg import apg
from regbench.solvers.options import SolverOptions


def _quadratic(seed=0, n=20):
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(n, n, generator=g, dtype=torch.float64)
    Q = M @ M.T / n + 0.1 * torch.eye(n, dtype=torch.float64)
    b = torch.randn(1, n, generator=g, dtype=torch.float64)
    return Q, b, torch.linalg.solve(Q, b.T).T


def test_apg_reaches_the_minimizer_of_a_quadratic():
    Q, b, x_star = _quadratic()
    L = float(torch.linalg.eigvalsh(Q).max())
    x, info = apg(torch.zeros_like(b), lambda x: x @ Q - b, lipschitz=L, tol=1e-10, max_iter=20000)
    assert info.converged
    assert torch.allclose(x, x_star, atol=1e-6)


def test_apg_with_backtracking_needs_no_lipschitz_bound():
    Q, b, x_star = _quadratic(seed=1)
    f = lambda x: 0.5 * ((x @ Q) * x).sum(1) - (b * x).sum(1)
    x, info = apg(torch.zeros_like(b), lambda x: x @ Q - b, f_value=f, tol=1e-10, max_iter=20000)
    assert info.converged and torch.allclose(x, x_star, atol=1e-6)


def test_apg_stops_at_the_iteration_cap_and_says_so():
    Q, b, _ = _quadratic()
    _, info = apg(torch.zeros_like(b), lambda x: x @ Q - b, lipschitz=100.0, tol=1e-12, max_iter=5)
    assert info.iterations == 5 and not info.converged


def _denoising_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, 32, 32, generator=g, dtype=torch.float64)
    y = x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    return y


def test_solver_decreases_a_crr_energy_to_its_minimum():
    torch.manual_seed(0)
    m = CRR(lam=2.0).double()
    with torch.no_grad():
        m.spline.raw.normal_()
    y = _denoising_problem()
    reg = m.regularizer(m.hp, SolverOptions(), y)
    energy = lambda x: 0.5 * ((x - y) ** 2).flatten(1).sum(1) + m.hp["lam"] * reg.fn(x)
    grad = lambda x: x - y + m.hp["lam"] * reg.grad(x)
    L = 1 + m.hp["lam"] * reg.lipschitz
    x, info = apg(y.clone(), grad, lipschitz=L, energy=energy, tol=1e-6, max_iter=5000, track_energy=True)
    ref, _ = apg(y.clone(), grad, lipschitz=L, tol=1e-12, max_iter=50000)
    assert info.converged
    assert info.energies[-1] < float(energy(y)) - 1.0
    assert abs(info.energies[-1] - float(energy(ref))) < 1e-6 * abs(float(energy(ref)))
    assert float(grad(x).norm()) < 1e-3 * float(grad(y).norm())


def test_tv_reconstruction_lowers_its_energy():
    y = _denoising_problem(1).float()
    import deepinv as dinv

    physics = dinv.physics.Denoising()
    m = TV(lam=0.05)
    x, info = m.reconstruct(y, physics, y.clone(), m.hp, SolverOptions(tol=1e-5, max_iter=50))
    energy = lambda z: 0.5 * ((z - y) ** 2).sum() + 0.05 * m.reg_energy(z).sum()
    assert float(energy(x)) < float(energy(y)) - 0.5


def test_compiled_ridge_gradient_gives_the_same_reconstruction():
    import deepinv as dinv

    torch.manual_seed(0)
    m = CRR(lam=3.0, mu=8.0)
    with torch.no_grad():
        m.spline.raw.normal_(0.0, 1.0)
    y = _denoising_problem(2).float()
    physics = dinv.physics.Denoising()
    options = SolverOptions(tol=1e-6, max_iter=500)
    eager, info_eager = m.reconstruct(y, physics, y.clone(), m.hp, options)
    fast, info_fast = m.reconstruct(y, physics, y.clone(), m.hp, options.replace(compile=True))
    assert info_eager.converged and info_fast.converged
    assert float((eager - fast).abs().max()) < 1e-5
    assert set(m.__dict__) == set(CRR(lam=3.0, mu=8.0).__dict__)  # a solve leaves nothing on the method


def test_sampled_energy_tracking_records_every_kth_iterate_and_the_last():
    Q, b, _ = _quadratic(seed=2)
    f = lambda x: 0.5 * ((x @ Q) * x).sum(1) - (b * x).sum(1)
    L = float(torch.linalg.eigvalsh(Q).max())
    common = dict(lipschitz=L, energy=f, tol=1e-8, max_iter=20000, track_energy=True)
    _, full = apg(torch.zeros_like(b), lambda x: x @ Q - b, **common)
    every = next(e for e in (6, 7, 8) if full.iterations % e)  # the last iterate is not a multiple: recorded too
    _, sampled = apg(torch.zeros_like(b), lambda x: x @ Q - b, energy_every=every, **common)
    assert sampled.iterations == full.iterations > 3 * every
    expected = [full.energies[k - 1] for k in range(every, full.iterations + 1, every)] + [full.energies[-1]]
    assert sampled.energies == expected


def test_speed_restart_keeps_the_minimizer_and_only_resets_after_its_interval():
    """A strongly convex quadratic with condition number 1000. (Whether it saves iterations depends on the
    problem: on WCRR denoising it does, measured by `make perf`; on this quadratic the gradient restart
    alone does better.)"""
    g = torch.Generator().manual_seed(3)
    U, _ = torch.linalg.qr(torch.randn(200, 200, generator=g, dtype=torch.float64))
    Q = U @ torch.diag(torch.logspace(0, 3, 200, dtype=torch.float64)) @ U.T
    b = torch.randn(1, 200, generator=g, dtype=torch.float64)
    x_star = torch.linalg.solve(Q, b.T).T
    solve = lambda **kw: apg(
        torch.zeros_like(b), lambda x: x @ Q - b, lipschitz=1000.0, **{"tol": 1e-9, "max_iter": 20000, **kw}
    )
    x_plain, plain = solve()
    x_speed, speed = solve(speed_restart=40)
    assert plain.converged and speed.converged and speed.restarts > plain.restarts
    assert torch.allclose(x_speed, x_star, rtol=0, atol=1e-5 * float(x_star.norm()))
    _, rare = solve(speed_restart=10**6, max_iter=plain.iterations)  # an interval longer than the solve: never fires
    assert rare.iterations == plain.iterations and rare.restarts == plain.restarts


def test_denoising_solves_use_the_speed_restart_and_other_operators_do_not(monkeypatch):
    import deepinv as dinv

    import regbench.solvers.variational as variational
    from regbench.solvers.apg import SPEED_RESTART_MIN, SolveInfo

    seen = []
    monkeypatch.setattr(variational, "apg", lambda x0, **kw: (seen.append(kw) or x0, SolveInfo(0, True, 0.0)))
    y = _denoising_problem().float()
    denoise = dinv.physics.Denoising(dinv.physics.GaussianNoise(0.1))
    blur = dinv.physics.Blur(
        dinv.physics.blur.gaussian_blur(1.0), padding="circular", noise_model=dinv.physics.GaussianNoise(0.1)
    )
    method = CRR()
    options = SolverOptions(tol=1e-4, max_iter=5)
    method.reconstruct(y, denoise, y, method.hp, options)
    method.reconstruct(y, blur, y, method.hp, options)
    method.reconstruct(y, denoise, y, method.hp, options.replace(restart=False))  # the plain reference solve
    assert seen[0]["speed_restart"] == SPEED_RESTART_MIN
    assert seen[1]["speed_restart"] == 0 and seen[2]["speed_restart"] == 0


def _crr_denoising(seed=0):
    torch.manual_seed(seed)
    m = CRR(lam=2.0).double()
    with torch.no_grad():
        m.spline.raw.normal_()
    y = _denoising_problem(seed)
    reg = m.regularizer(m.hp, SolverOptions(), y)
    grad = lambda x: x - y + m.hp["lam"] * reg.grad(x)
    energy = lambda x: 0.5 * ((x - y) ** 2).flatten(1).sum(1) + m.hp["lam"] * reg.fn(x)
    return y, grad, energy, 1 + m.hp["lam"] * reg.lipschitz


def test_a_loose_bound_does_not_end_the_solve_at_its_start():
    """A valid bound 1000 times too large makes each step, and so the relative change, tiny; the solve
    must still reach the tight bound's minimizer, not stop at y and call it converged."""
    y, grad, _, L = _crr_denoising()
    tight, info_tight = apg(y.clone(), grad, lipschitz=L, tol=1e-4, max_iter=20000)
    loose, info_loose = apg(y.clone(), grad, lipschitz=1000 * L, tol=1e-4, max_iter=50000)
    assert info_tight.converged and info_loose.converged
    assert info_loose.iterations > 5 * info_tight.iterations
    assert info_loose.grad_ratio <= 1e-2 and info_loose.step == 1 / (1000 * L)
    distance = float((loose - tight).norm() / (tight - y).norm())
    assert distance < 3e-2, distance  # relative to the distance the solve travels; the old stop: 1.0


def test_the_line_search_grows_a_step_that_started_too_short():
    """Started at a step 1000 times too short, the line search lengthens it (not only shortens) and
    reaches the minimizer with a step of the order of 1 / L; its evaluations are counted."""
    y, grad, energy, L = _crr_denoising(1)
    ref, _ = apg(y.clone(), grad, lipschitz=L, tol=1e-10, max_iter=50000)
    x, info = apg(y.clone(), grad, f_value=energy, initial_lipschitz=1000 * L, tol=1e-8, max_iter=20000)
    assert info.converged and info.step > 0.5 / L
    assert info.evaluations > info.iterations
    assert float((x - ref).norm() / (ref - y).norm()) < 1e-3
