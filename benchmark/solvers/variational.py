"""The shared variational solve: min_x f(x; y) + lam * R(x) for a data fidelity f and a regularizer R.

A regularizer is a deepinv `Prior` (value `fn`, gradient `grad`, optionally `prox`)
plus what the solver may use: `lipschitz`, a bound on the Lipschitz constant of
grad R, or None, in which case the solver backtracks on the step; `smooth`: whether
the solver steps on grad R (True) or applies prox R (False). The hyperparameter
`lam` is an argument, the options are typed (`SolverOptions`).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from deepinv.optim import Prior
from deepinv.optim.data_fidelity import L2

from regbench.datasets.task import OperatorFacts
from regbench.solvers.apg import SPEED_RESTART_MIN, SolveInfo, apg
from regbench.solvers.options import SolverOptions


class Regularizer(Prior):
    """R as the solver sees it: `fn`, `grad` (smooth) or `prox` (proximable), and a Lipschitz bound of grad R."""

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        grad: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        prox: Optional[Callable[[torch.Tensor, float], torch.Tensor]] = None,
        lipschitz: Optional[float] = None,
    ):
        super().__init__()
        self.explicit_prior = True  # deepinv: the value fn(x) is available
        if grad is None and prox is None:
            raise ValueError("a regularizer needs `grad` (a smooth R) or `prox` (a proximable R); it has neither")
        self._value, self._grad, self._prox = fn, grad, prox
        self.smooth = grad is not None
        self.lipschitz = None if lipschitz is None else float(lipschitz)

    def fn(self, x, *args, **kwargs) -> torch.Tensor:
        return self._value(x)

    def grad(self, x, *args, **kwargs) -> torch.Tensor:
        if self._grad is None:
            raise NotImplementedError("this regularizer is proximable, not smooth: it has no gradient")
        return self._grad(x)

    def prox(self, x, *args, gamma: float = 1.0, **kwargs) -> torch.Tensor:
        if self._prox is None:
            raise NotImplementedError("this regularizer is smooth, not proximable: it has no prox")
        return self._prox(x, gamma)


def data_lipschitz(operator: OperatorFacts, physics, x: torch.Tensor) -> float:
    """||A||^2, the Lipschitz constant of the L2 fidelity's gradient: the task's value, else a
    power-iteration estimate with a 1% margin."""
    if operator.sqnorm is not None:
        return float(operator.sqnorm)
    return 1.01 * float(physics.compute_sqnorm(x, verbose=False))


def operator_of(options: SolverOptions, physics) -> OperatorFacts:
    """The facts the task stated about the operator (`options.operator`, set per sample), or
    those of a bare physics handed over without a task."""
    return options.operator or OperatorFacts.of(physics)


@torch.no_grad()
def solve(
    reg: Regularizer, y: torch.Tensor, physics, x0: torch.Tensor, lam: float, options: SolverOptions
) -> tuple[torch.Tensor, SolveInfo]:
    """APG on 1/2 ||A x - y||^2 + lam R(x): gradient steps on both terms when R is smooth (step 1 / (||A||^2 +
    lam L_R), or a line search when R gives no bound), a gradient step on the data and lam R's prox otherwise."""
    fidelity, operator = L2(), operator_of(options, physics)
    data_lip = data_lipschitz(operator, physics, x0)
    speed = SPEED_RESTART_MIN if operator.identity and options.restart else 0  # strongly convex: see solvers/apg.py

    def energy(x):
        return fidelity.fn(x, y, physics) + lam * reg.fn(x)

    if reg.smooth:
        lipschitz = None if reg.lipschitz is None else data_lip + lam * reg.lipschitz
        return apg(
            x0,
            grad_f=lambda x: fidelity.grad(x, y, physics) + lam * reg.grad(x),
            lipschitz=lipschitz,
            f_value=energy if lipschitz is None else None,
            initial_lipschitz=data_lip,  # the line search's first guess: the data term's own bound
            energy=energy,
            **options.apg(speed_restart=speed),
        )
    return apg(
        x0,
        grad_f=lambda x: fidelity.grad(x, y, physics),
        lipschitz=data_lip,
        prox_g=lambda v, step: reg.prox(v, gamma=lam * step),
        energy=energy,
        **options.apg(speed_restart=speed),
    )


def unrolled_solve(
    reg: Regularizer, y: torch.Tensor, physics, x_ref: torch.Tensor, lam: float, options: SolverOptions
) -> torch.Tensor:
    """`options.unroll` proximal-gradient steps of step 1/L with autograd on, warm-started at the converged
    x_ref (detached). Near a minimizer this follows the minimizer's local response to y (a truncated
    Neumann series of the implicit derivative)."""
    if reg.smooth and reg.lipschitz is None:
        raise NotImplementedError("an unrolled solve needs a Lipschitz bound of grad R for its step")
    fidelity = L2()
    lip = data_lipschitz(operator_of(options, physics), physics, x_ref) + (lam * reg.lipschitz if reg.smooth else 0.0)
    x = x_ref.detach()
    with torch.enable_grad():
        for _ in range(options.unroll):
            g = fidelity.grad(x, y, physics)
            x = x - (g + lam * reg.grad(x)) / lip if reg.smooth else reg.prox(x - g / lip, gamma=lam / lip)
    return x
