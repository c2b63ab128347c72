"""Total variation: deepinv's isotropic TV prior; lambda is fitted per task.

R(x) = ||D x||_{1,2}; the APG solver takes gradient steps on the data term and
deepinv's TV prox (a primal-dual inner solver) for lam*R.
"""

from __future__ import annotations

import torch
from deepinv.optim.prior import TVPrior

from regbench.methods.base import Hyper, VariationalMethod


class TV(VariationalMethod):
    smooth_regularizer = False
    hyperparameters = {"lam": Hyper(0.1, span=30.0, calibrate=True, noise_power=1.0)}

    def __init__(self, prox_iters: int = 200, prox_tol: float = 1e-5, **hyper: float):
        super().__init__(**hyper)
        self.prior = TVPrior(def_crit=prox_tol, n_it_max=prox_iters)

    def reg_energy(self, x: torch.Tensor) -> torch.Tensor:
        return self.prior.fn(x)

    def reg_prox(self, x: torch.Tensor, gamma: float) -> torch.Tensor:
        return self.prior.prox(x, gamma=gamma)

    def regularizer(self, hyper, options, like):
        # deepinv's TV denoiser warm-starts from its last call; each solve starts fresh.
        self.prior.TVModel.restart = True
        return super().regularizer(hyper, options, like)
