"""Regularizer, solver and training loop as separate parts: hyperparameters are passed, never mutated."""

import deepinv as dinv
import pytest
import torch

from regbench.evaluation.reconstruct import Reconstruction
from regbench.methods.ridge import CRR
from regbench.solvers.options import SolverOptions
from regbench.solvers.variational import Regularizer, solve
from regbench.training.loop import TrainingLoop


def _noisy(seed=0, size=24):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 1, size, size, generator=g, dtype=torch.float64)
    return x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)


def _crr():
    torch.manual_seed(0)
    m = CRR().double()
    with torch.no_grad():
        m.spline.raw.normal_()
    return m


def test_a_reconstruction_uses_the_values_it_is_given_and_leaves_the_method_as_it_was():
    m, y = _crr(), _noisy()
    own = dict(m.hp)
    physics = dinv.physics.Denoising()
    sample = type("S", (), {"y": y, "physics": physics, "x0": y, "operator": None})()
    weak, strong = (Reconstruction(m, {"lam": lam}, SolverOptions(tol=1e-6, max_iter=2000)) for lam in (0.1, 10.0))
    x_weak, x_strong = weak(sample)[0], strong(sample)[0]
    assert m.hp == own and weak.hyper == {"lam": 0.1, "mu": own["mu"]}
    assert float((x_weak - y).norm()) < float((x_strong - y).norm())  # a larger lam moves further from y
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) \['lambda'\]; known: \['lam', 'mu'\]"):
        Reconstruction(m, {"lambda": 1.0}, SolverOptions())


def test_a_regularizer_needs_a_gradient_or_a_prox_and_options_are_checked():
    with pytest.raises(ValueError, match="needs `grad` .* or `prox` .*; it has neither"):
        Regularizer(lambda x: x.sum())
    with pytest.raises(ValueError, match="tol must be > 0"):
        SolverOptions(tol=0.0)
    smooth = Regularizer(lambda x: x.pow(2).sum(), grad=lambda x: 2 * x, lipschitz=2.0)
    with pytest.raises(NotImplementedError, match="smooth, not proximable"):
        smooth.prox(torch.zeros(1), gamma=1.0)
    assert isinstance(smooth, dinv.optim.Prior) and smooth.smooth and smooth.lipschitz == 2.0


def test_without_a_lipschitz_bound_the_solver_backtracks_to_the_same_minimizer():
    m, y = _crr(), _noisy(1)
    physics, options = dinv.physics.Denoising(), SolverOptions(tol=1e-9, max_iter=20000)
    bounded = m.regularizer(m.hp, options, y)
    unbounded = Regularizer(bounded.fn, grad=bounded.grad, lipschitz=None)
    x_bound, info_bound = solve(bounded, y, physics, y, 2.0, options)
    x_free, info_free = solve(unbounded, y, physics, y, 2.0, options)
    assert info_bound.converged and info_free.converged
    assert float((x_free - x_bound).norm() / x_bound.norm()) < 1e-5


def _toy_training(tmp_path, die_after=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1, dtype=torch.float64)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=6)
    gen = torch.Generator().manual_seed(1)
    budget = {"snapshot": str(tmp_path / "toy.pt"), "snapshot_every_s": 0}
    loop = TrainingLoop("toy", 6, opt, sched, budget, progress=False, model=model, gen=gen)

    def step(k):
        if die_after is not None and k == die_after:
            raise KeyboardInterrupt
        x = torch.randn(8, 4, generator=gen, dtype=torch.float64)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        loss.backward()
        return {"loss": loss.item()}

    return model, loop.run(step)


def test_the_training_loop_resumes_from_its_snapshot_with_the_same_draws(tmp_path):
    whole, log = _toy_training(tmp_path / "a")
    assert log["steps"] == 6 and len(log["history"]["loss"]) == 6 and log["minutes"] >= 0
    assert log["history"]["loss"][-1] < log["history"]["loss"][0]
    with pytest.raises(KeyboardInterrupt):
        _toy_training(tmp_path / "b", die_after=3)
    resumed, resumed_log = _toy_training(tmp_path / "b")
    assert resumed_log["history"] == log["history"]
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))


def test_solve_info_is_typed_and_a_plain_dict_from_elsewhere_is_checked():
    from regbench.solvers.report import SolveReport

    m, y = _crr(), _noisy()
    x, info = m.reconstruct(y, dinv.physics.Denoising(), y, m.hp, SolverOptions(tol=1e-5, max_iter=300))
    assert isinstance(info, SolveReport) and info.converged and 1 <= info.iterations < 300
    assert SolveReport.of({"iterations": 3}) == SolveReport(iterations=3)
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['iters'\]; known: \['converged'"):
        SolveReport.of({"iters": 3})


class _Returns(torch.nn.Module):
    """A method whose reconstruction returns what it is told to (a bad model from elsewhere)."""

    def __init__(self, result):
        super().__init__()
        self.result = result

    def hyper(self, values=None):
        return {}

    def reconstruct(self, y, physics, x0, hyper, options):
        return self.result(y)


@pytest.mark.parametrize(
    "result, reason",
    [
        (lambda y: (y * float("nan"), {}), "failed: non-finite reconstruction"),
        (lambda y: (y, {"iters": 1}), "failed: ValueError: solve info: unknown field(s) ['iters']"),
        (lambda y: (y, 3), "failed: TypeError: a reconstruction returns (x, SolveReport or dict), got int"),
    ],
)
def test_a_bad_reconstruction_becomes_a_failed_row_with_its_reason(result, reason):
    from types import SimpleNamespace

    y = _noisy()
    sample = SimpleNamespace(y=y, physics=dinv.physics.Denoising(), x0=y, operator=None)
    x_hat, info, status = Reconstruction(_Returns(result), {}, SolverOptions()).guarded(sample)
    assert x_hat is None and status.startswith(reason), status
