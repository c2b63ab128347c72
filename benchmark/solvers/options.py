"""The options a reconstruction runs with: one typed record, built from a run's profile and method specs.

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

from regbench.core.spec import MethodSpec, ProfileSpec
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


def solver_options(profile: ProfileSpec, method: MethodSpec | None = None) -> SolverOptions:
    """The profile's solver settings and the method's own reconstruction settings for the profile
    (`reconstruct.<profile>` in its YAML, e.g. sampler steps; seeds and n_test excluded). The latter
    are not part of the checkpoint key: changing them never retrains (they are part of the
    combination key and the calibration key)."""
    return SolverOptions(
        tol=profile.tol,
        max_iter=profile.max_iter,
        compile=profile.compile,
        method=dict(method.options) if method is not None else {},
    )
