"""What a reconstruction reports besides x, typed: the iterations, convergence and status columns of its rows.

Every method's `reconstruct` returns `(x, SolveReport)`; a method written elsewhere may return a plain
dict with the same field names, which `SolveReport.of` turns into one (an unknown name is an error
that lists the known ones). `converged` is None where it does not apply (a fixed number of steps:
PnP's iterations, a sampler's steps, DEAL's trained map); `energy_monotone` is None for methods
whose energy is not tracked.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from regbench.solvers.apg import SolveInfo


@dataclass(frozen=True)
class SolveReport:
    iterations: int = 0
    converged: Optional[bool] = None
    rel_change: float = float("nan")
    energy_monotone: Optional[bool] = None
    restarts: int = 0
    status: str = "ok"  # or why not: "diverged: ...", "not converged: ..."
    seed: Optional[int] = None  # samplers: the seed the sample was drawn with
    line_search_evals: int = 0  # evaluations of the energy by the solver's line search
    step: float = float("nan")  # the solver's last step size
    grad_ratio: float = float("nan")  # the gradient mapping's last norm over its first (the scale-free stop)

    @classmethod
    def of(cls, info: Any) -> "SolveReport":
        """A report from a SolveReport, the shared solver's SolveInfo, or a dict of these fields."""
        if isinstance(info, SolveReport):
            return info
        if isinstance(info, SolveInfo):
            return cls(
                iterations=info.iterations,
                converged=info.converged,
                rel_change=info.rel_change,
                energy_monotone=info.monotone if info.energies else None,
                restarts=info.restarts,
                status=info.status,
                line_search_evals=info.evaluations,
                step=info.step,
                grad_ratio=info.grad_ratio,
            )
        if isinstance(info, Mapping):
            names = {f.name for f in dataclasses.fields(cls)}
            unknown = set(info) - names
            if unknown:
                raise ValueError(f"solve info: unknown field(s) {sorted(unknown)}; known: {sorted(names)}")
            return cls(**info)
        raise TypeError(f"a reconstruction returns (x, SolveReport or dict), got {type(info).__name__} as its info")
