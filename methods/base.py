"""What every regbench method is: the contract the runner relies on.

A method is a torch Module (so state_dict/load_state_dict come for free) that
declares its family, its hyperparameters (DIVal's idea: default, search range,
whether changing it needs retraining) and whether it is an energy whose
minimization can be checked for convergence. Nothing here knows about Hydra.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from deepinv.optim.data_fidelity import L2

from regbench.datasets.task import OperatorFacts
from regbench.solvers.apg import SPEED_RESTART_MIN, SolveInfo, apg

FAMILIES = ("baseline", "variational", "denoiser", "sampler")  # baseline: no prior at all (the initializer)
APG_OPTIONS = ("tol", "max_iter", "restart", "speed_restart", "track_energy", "energy_every", "callback")


@dataclass(frozen=True)
class Hyper:
    """A hyperparameter: `calibrate` ones are fitted per task on calibration images."""

    default: float
    span: float = 10.0  # calibration searches [v / span, v * span] in log scale
    calibrate: bool = False
    retrain: bool = False
    integer: bool = False  # an iteration count: calibration tries whole numbers only
    bounds: Optional[tuple[float, float]] = None  # the search never leaves [low, high] (e.g. a weight in (0, 1])
    # parameter-choice rule (probe noise_decay): with the noise std times s, the calibrated value times s**noise_power
    noise_power: float = 0.0


class Method(torch.nn.Module):
    family: str = "variational"
    energy_based: bool = False
    trainable: bool = False
    # samplers: the output depends on `solver["seed"]`; the runner evaluates each test image
    # once per seed of the method's `reconstruct.<profile>.seeds` and rows carry it (sample_seed)
    stochastic: bool = False
    hyperparameters: dict[str, Hyper] = {}

    def __init__(self, **hyper: float):
        super().__init__()
        unknown = set(hyper) - set(self.hyperparameters)
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown hyperparameter(s) {sorted(unknown)}; "
                f"known: {sorted(self.hyperparameters)}"
            )
        self.hp = {k: float(hyper.get(k, h.default)) for k, h in self.hyperparameters.items()}

    # -- training -----------------------------------------------------------
    def fit(self, patches, budget: dict, progress: bool = True) -> dict:
        """Train on a patch sampler within `budget`; returns a training log. No-op by default."""
        return {}

    # -- reconstruction -----------------------------------------------------
    def reconstruct(self, y: torch.Tensor, physics, x0: torch.Tensor, solver: dict) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def differentiable_reconstruct(self, y, physics, x0, x_ref: torch.Tensor, solver: dict) -> Optional[torch.Tensor]:
        """x(y) with autograd from y (the worst_case probe ascends through it); x0: the initializer of y,
        x_ref: the converged x of the unperturbed data. None: no differentiable path (the probe then
        searches at random)."""
        return None

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def calibration_space(self) -> dict[str, Hyper]:
        return {k: h for k, h in self.hyperparameters.items() if h.calibrate}

    # -- state ---------------------------------------------------------------
    def get_extra_state(self) -> dict:
        return {"hp": dict(self.hp)}

    def set_extra_state(self, state: Any) -> None:
        self.hp.update(state.get("hp", {}))


class VariationalMethod(Method):
    """min_x 1/2 ||A x - y||^2 + lam * R(x), solved by the shared APG solver.

    Subclasses give R either as smooth (`reg_grad`, `reg_lipschitz`) or as
    proximable (`reg_prox`); `reg_energy` is the value of R for convergence checks.
    """

    family = "variational"
    energy_based = True
    smooth_regularizer = True
    hyperparameters = {"lam": Hyper(1.0, span=100.0, calibrate=True, noise_power=1.0)}

    def reg_energy(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reg_grad(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reg_lipschitz(self) -> float:
        raise NotImplementedError

    def reg_prox(self, x: torch.Tensor, gamma: float) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def reconstruct(self, y, physics, x0, solver: dict) -> tuple[torch.Tensor, dict]:
        lam = self.hp["lam"]
        operator = operator_facts(solver, physics)
        solver = {k: v for k, v in solver.items() if k in APG_OPTIONS}  # drop method-specific keys (compile)
        if operator.identity and solver.get("restart", True):
            solver.setdefault("speed_restart", SPEED_RESTART_MIN)  # strongly convex: see benchmark/solvers/apg.py
        fidelity = L2()
        data_lip = data_lipschitz(operator, physics, x0)

        def energy(x):
            return fidelity.fn(x, y, physics) + lam * self.reg_energy(x)

        if self.smooth_regularizer:
            x, info = apg(
                x0,
                grad_f=lambda x: fidelity.grad(x, y, physics) + lam * self.reg_grad(x),
                lipschitz=data_lip + lam * self.reg_lipschitz(),
                energy=energy,
                **solver,
            )
        else:
            x, info = apg(
                x0,
                grad_f=lambda x: fidelity.grad(x, y, physics),
                lipschitz=data_lip,
                prox_g=lambda v, step: self.reg_prox(v, lam * step),
                energy=energy,
                **solver,
            )
        return x, solve_summary(info)

    def differentiable_reconstruct(self, y, physics, x0, x_ref, solver: dict) -> torch.Tensor:
        """Unrolled: `solver["unroll"]` (default 20) proximal-gradient steps of step 1/L with autograd on,
        warm-started at the converged x_ref (detached). Near a minimizer this follows the minimizer's local
        response to y (a truncated Neumann series of the implicit derivative); the amplification the probe
        reports always comes from converged solves."""
        lam, fidelity = self.hp["lam"], L2()
        lip = data_lipschitz(operator_facts(solver, physics), physics, x_ref) + (
            lam * self.reg_lipschitz() if self.smooth_regularizer else 0.0
        )
        x = x_ref.detach()
        with torch.enable_grad():
            for _ in range(int(solver.get("unroll", 20))):
                g = fidelity.grad(x, y, physics)
                x = (
                    x - (g + lam * self.reg_grad(x)) / lip
                    if self.smooth_regularizer
                    else self.reg_prox(x - g / lip, lam / lip)
                )
        return x


def operator_facts(solver: dict, physics) -> OperatorFacts:
    """The facts the task stated about the operator (`solver["operator"]`, set by the runner), or
    those of a bare physics handed over without a task."""
    return solver.get("operator") or OperatorFacts.of(physics)


def data_lipschitz(operator: OperatorFacts, physics, x: torch.Tensor) -> float:
    """||A||^2, the Lipschitz constant of the L2 fidelity's gradient: the task's value, else a
    power-iteration estimate with a 1% margin."""
    if operator.sqnorm is not None:
        return float(operator.sqnorm)
    return 1.01 * float(physics.compute_sqnorm(x, verbose=False))


def noise_level(physics, floor: float = 0.0) -> float:
    """The Gaussian noise std of a task's measurements (its physics' noise model), at least `floor`."""
    sigma = getattr(getattr(physics, "noise_model", None), "sigma", None)
    if sigma is None:
        raise ValueError(
            f"{type(physics).__name__} has no Gaussian noise model (physics.noise_model.sigma); "
            "denoiser-based methods need the noise level of the measurements"
        )
    return max(float(torch.as_tensor(sigma).flatten()[0]), floor)


def solve_summary(info: SolveInfo) -> dict:
    out = {
        "iterations": info.iterations,
        "converged": info.converged,
        "rel_change": info.rel_change,
        "status": info.status,
    }
    if info.energies:
        out["energy_monotone"] = info.monotone
    return out
