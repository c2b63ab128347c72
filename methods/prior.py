"""Any deepinv Prior as a variational method: a new method by YAML alone.

    model:
      _target_: regbench.methods.prior.PriorMethod
      prior: {_target_: deepinv.optim.WaveletPrior, wv: db4, level: 3}

The prior's `fn` is R, its `prox` (or, with `smooth: true`, its `grad`, with the
`lipschitz` bound when one is given and a backtracking line search otherwise) is used by the
shared APG solver, and lambda is calibrated per task like every other variational method.
"""

from __future__ import annotations

import torch

from regbench.methods.base import Hyper, VariationalMethod


class PriorMethod(VariationalMethod):
    hyperparameters = {"lam": Hyper(0.1, span=100.0, calibrate=True, noise_power=1.0)}

    def __init__(self, prior, smooth: bool = False, lipschitz: float | None = None, **hyper: float):
        super().__init__(**hyper)
        self.prior = prior
        self.smooth_regularizer = bool(smooth)
        self._lipschitz = lipschitz

    def reg_energy(self, x: torch.Tensor) -> torch.Tensor:
        return self.prior.fn(x)

    def reg_grad(self, x: torch.Tensor) -> torch.Tensor:
        return self.prior.grad(x)

    def reg_lipschitz(self) -> float | None:
        """The given bound of grad R's Lipschitz constant; None: the solver backtracks."""
        return None if self._lipschitz is None else float(self._lipschitz)

    def reg_prox(self, x: torch.Tensor, gamma: float) -> torch.Tensor:
        return self.prior.prox(x, gamma=gamma)
