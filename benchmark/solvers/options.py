"""The options a reconstruction runs with: one typed record, built from a run's config (profile, method YAML).

`SolverOptions` holds what the shared solver reads (tolerance, iteration cap, restarts,
energy tracking, a per-iteration callback) and what the engine sets per sample (the task's
operator facts, a sampler's seed, the unroll depth of a differentiable solve); `method`
holds the method's own settings for the profile (`reconstruct.<profile>` in its YAML:
sampler steps, bf16, DEAL's fixed-point mode), which the solver never reads.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from omegaconf import DictConfig, OmegaConf

from regbench.datasets.task import OperatorFacts


@dataclass(frozen=True)
class SolverOptions:
    tol: float = 1e-4
    max_iter: int = 500
    restart: bool = True
    speed_restart: Optional[int] = None  # None: the method's choice (on for strongly convex problems)
    track_energy: bool = False
    energy_every: int = 1
    callback: Optional[Callable[[int, Any], None]] = None
    compile: bool = False
    seed: int = 0
    unroll: int = 20
    operator: Optional[OperatorFacts] = None
    method: dict = field(default_factory=dict)

    def __post_init__(self):
        if not (self.tol > 0 and self.max_iter >= 1 and self.energy_every >= 1 and self.unroll >= 1):
            raise ValueError(
                f"solver options: tol must be > 0 and max_iter, energy_every, unroll >= 1 (got tol={self.tol}, "
                f"max_iter={self.max_iter}, energy_every={self.energy_every}, unroll={self.unroll})"
            )

    def replace(self, **changes) -> "SolverOptions":
        return dataclasses.replace(self, **changes)

    def apg(self, speed_restart: int = 0) -> dict:
        """The keyword arguments of `regbench.solvers.apg.apg` (`speed_restart`: the method's default)."""
        return {
            "tol": self.tol,
            "max_iter": self.max_iter,
            "restart": self.restart,
            "speed_restart": speed_restart if self.speed_restart is None else self.speed_restart,
            "track_energy": self.track_energy,
            "energy_every": self.energy_every,
            "callback": self.callback,
        }


def solver_options(cfg: DictConfig) -> SolverOptions:
    """The profile's solver settings and the method's own reconstruction settings for the profile."""
    return SolverOptions(
        tol=float(cfg.profile.solver.tol),
        max_iter=int(cfg.profile.solver.max_iter),
        compile=bool(cfg.profile.solver.get("compile", False)),
        method=reconstruct_options(cfg),
    )


def reconstruct_options(cfg: DictConfig) -> dict:
    """The method's own reconstruction settings for this profile (`reconstruct.<profile>` in its
    YAML, e.g. sampler steps), seeds excluded. Not part of the checkpoint key: changing them
    never retrains (they are part of the combination key and the calibration key)."""
    per_profile = cfg.method.get("reconstruct")
    if not per_profile:
        return {}
    options = OmegaConf.to_container(per_profile[cfg.profile.name], resolve=True)  # validate() checked it is there
    options.pop("seeds", None)
    options.pop("n_test", None)
    return options


def convergence_options(cfg: DictConfig) -> tuple[dict, int]:
    """(the option changes that track the energy on the rows of energy-based methods, or {}; PSNR-vs-iteration
    traces per combination)."""
    conv = cfg.get("convergence") or {}
    energy = (
        {"track_energy": True, "energy_every": int(conv.get("energy_every", 1))} if conv.get("energy", False) else {}
    )
    return energy, int(conv.get("traces", 2))
