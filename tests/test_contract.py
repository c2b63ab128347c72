"""Every registered method passes the same contract (tests/ runs it for each configs/method/*.yaml)."""

import pytest
import torch
from conftest import run_of

from regbench.core.instantiate import build
from regbench.core.registry import known
from regbench.methods.base import FAMILIES
from regbench.solvers.options import SolverOptions
from regbench.training import checkpoints
from regbench.training.weights import train_method

SOLVER = SolverOptions(tol=1e-4, max_iter=100)


def _trained(run):
    method = build(run.method.model)
    spec = checkpoints.spec_of(run)
    if spec is not None:
        train_method(run, method, torch.device("cpu"), spec)
    return method.eval()


def same(a: torch.Tensor, b: torch.Tensor, method) -> bool:
    """Bit-identical, or within 1e-5 for a method whose library adds float noise (`repeatable = False`: the bm3d
    library's calls differ by up to 4e-7 on an idle machine and by more than 1e-6 under load)."""
    return torch.equal(a, b) if method.repeatable else torch.allclose(a, b, rtol=0, atol=1e-5)


def _batch(run):
    task = build(run.task.spec)
    samples = list(task.samples("test", 2, 32, run.seed, "cpu"))
    return torch.cat([s.y for s in samples]), samples[0].physics, torch.cat([s.x0 for s in samples])


@pytest.mark.parametrize("name", known("method"))
def test_method_contract(name, tmp_path):
    run = run_of(f"method={name}", "profile=smoke", "progress=false", f"cache_dir={tmp_path}")
    method = _trained(run)
    assert method.family in FAMILIES
    assert set(method.calibration_space()) <= set(method.hyperparameters)
    y, physics, x0 = _batch(run)
    x_hat, info = method.reconstruct(y, physics, x0, method.hp, SOLVER)
    assert x_hat.shape == y.shape and torch.isfinite(x_hat).all()
    if method.energy_based:
        assert info.iterations >= 1 and info.converged is not None

    clone = build(run.method.model)
    clone.load_state_dict(method.state_dict())
    again, _ = clone.eval().reconstruct(y, physics, x0, clone.hp, SOLVER)
    assert same(again, x_hat, method)

    retrained = _trained(run)
    state_a, state_b = method.state_dict(), retrained.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a if torch.is_tensor(state_a[k]))
    assert same(retrained.reconstruct(y, physics, x0, retrained.hp, SOLVER)[0], x_hat, method)
