"""What every regbench method is: the contract the runner relies on.

A method is a torch Module (so state_dict/load_state_dict come for free) that
declares its family, its hyperparameters (DIVal's idea: default, search range,
whether changing it needs retraining) and whether it is an energy whose
minimization can be checked for convergence. Its own values (`hp`: the defaults,
or what training learned) travel with its weights; a reconstruction is given the
values to use (`hyper`, e.g. the calibrated ones) and typed `SolverOptions`, so
nothing is mutated to evaluate other values. Nothing here knows about Hydra.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import torch

from regbench.solvers.options import SolverOptions
from regbench.solvers.report import SolveReport
from regbench.solvers.variational import Regularizer, data_lipschitz, operator_of, solve, unrolled_solve

# baseline: no prior at all (the initializer); reconstructor: a model(y, physics) evaluated as it is
FAMILIES = ("baseline", "variational", "denoiser", "sampler", "reconstructor")
__all__ = [  # what a method module needs, in one import
    "FAMILIES",
    "Hyper",
    "Method",
    "Regularizer",
    "SolverOptions",
    "VariationalMethod",
    "data_lipschitz",
    "noise_level",
    "operator_of",
    "SolveReport",
]


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
    # samplers: the output depends on `options.seed`; the runner evaluates each test image
    # once per seed of the method's `reconstruct.<profile>.seeds` and rows carry it (sample_seed)
    stochastic: bool = False
    # the same input gives bit-identical output (False: float noise in a library, e.g. BM3D's ~1e-7)
    repeatable: bool = True
    hyperparameters: dict[str, Hyper] = {}

    def __init__(self, **hyper: float):
        super().__init__()
        self.hp = self.hyper(hyper, base={k: h.default for k, h in self.hyperparameters.items()})

    def hyper(self, values: Optional[Mapping[str, float]] = None, base: Optional[Mapping[str, float]] = None) -> dict:
        """The complete hyperparameters a reconstruction uses: the method's own values (`base`, default
        `hp`) with `values` over them; an unknown name is an error that lists the known ones."""
        values = dict(values or {})
        unknown = set(values) - set(self.hyperparameters)
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown hyperparameter(s) {sorted(unknown)}; "
                f"known: {sorted(self.hyperparameters)}"
            )
        return {k: float(values.get(k, v)) for k, v in (self.hp if base is None else base).items()}

    # -- what training schemes use (regbench.training.schemes) ---------------
    def parameter_groups(self, lr: float, settings: dict) -> list[dict]:
        """The optimizer's parameter groups at learning rate `lr` (one group by default)."""
        return [{"params": list(self.parameters()), "lr": lr}]

    def finish_training(self) -> None:
        """Refresh what derives from the weights once training ends (nothing by default)."""

    # -- reconstruction -----------------------------------------------------
    def reconstruct(
        self, y: torch.Tensor, physics, x0: torch.Tensor, hyper: Mapping[str, float], options: SolverOptions
    ) -> tuple[torch.Tensor, SolveReport]:
        """x from the measurements y (x0: the task's initializer) with the hyperparameters `hyper`
        (complete: `self.hyper(...)`); returns (x, SolveReport) (a dict of its fields is accepted too)."""
        raise NotImplementedError

    def differentiable_reconstruct(
        self, y, physics, x0, x_ref: torch.Tensor, hyper: Mapping[str, float], options: SolverOptions
    ) -> Optional[torch.Tensor]:
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
    """min_x 1/2 ||A x - y||^2 + lam * R(x), solved by the shared solver (regbench.solvers.variational).

    `regularizer(hyper, options, like)` gives R as a `Regularizer` (a deepinv Prior with a Lipschitz
    bound of its gradient, or none: the solver then backtracks). Its default builds R from
    `reg_energy` plus either `reg_grad`/`reg_lipschitz` (smooth R) or `reg_prox` (proximable R),
    for regularizers that no hyperparameter but lam changes.
    """

    family = "variational"
    energy_based = True
    smooth_regularizer = True
    hyperparameters = {"lam": Hyper(1.0, span=100.0, calibrate=True, noise_power=1.0)}
    learned_hyperparameters: tuple[str, ...] = ("lam",)  # bilevel training learns these with the weights

    def reg_energy(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reg_grad(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def reg_lipschitz(self) -> Optional[float]:
        raise NotImplementedError

    def reg_prox(self, x: torch.Tensor, gamma: float) -> torch.Tensor:
        raise NotImplementedError

    def regularizer(self, hyper: Mapping[str, float], options: SolverOptions, like: torch.Tensor) -> Regularizer:
        """R for these hyperparameters (lam aside: the solver weights R by it); `like`: a tensor of
        the solve's shape, device and dtype. Called with autograd on (and `options.compile` off), its
        gradient is differentiable in the parameters and in tensor-valued `hyper` (bilevel training)."""
        if self.smooth_regularizer:
            return Regularizer(self.reg_energy, grad=self.reg_grad, lipschitz=self.reg_lipschitz())
        return Regularizer(self.reg_energy, prox=self.reg_prox)

    @torch.no_grad()
    def reconstruct(self, y, physics, x0, hyper, options) -> tuple[torch.Tensor, SolveReport]:
        x, info = solve(self.regularizer(hyper, options, y), y, physics, x0, hyper["lam"], options)
        return x, SolveReport.of(info)

    def differentiable_reconstruct(self, y, physics, x0, x_ref, hyper, options) -> torch.Tensor:
        """Unrolled: `options.unroll` proximal-gradient steps of step 1/L with autograd on, warm-started at
        the converged x_ref (detached). Near a minimizer this follows the minimizer's local response to y (a
        truncated Neumann series of the implicit derivative); the amplification the probe reports always
        comes from converged solves."""
        with torch.no_grad():  # the regularizer's parameters are constants: only y (through x) is differentiated
            reg = self.regularizer(hyper, options.replace(compile=False, track_energy=False), x_ref)
        return unrolled_solve(reg, y, physics, x_ref, hyper["lam"], options)


def noise_level(physics, floor: float = 0.0) -> float:
    """The Gaussian noise std of a task's measurements (its physics' noise model), at least `floor`."""
    sigma = getattr(getattr(physics, "noise_model", None), "sigma", None)
    if sigma is None:
        raise ValueError(
            f"{type(physics).__name__} has no Gaussian noise model (physics.noise_model.sigma); "
            "denoiser-based methods need the noise level of the measurements"
        )
    return max(float(torch.as_tensor(sigma).flatten()[0]), floor)
