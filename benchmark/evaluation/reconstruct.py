"""A method bound to the hyperparameters and options it is evaluated with, applied to samples.

The runner, the calibration search and the probes reconstruct through it, so every
solve of a sample gets the task's operator facts, and a failed solve becomes a row
(`guarded`) instead of a crash of the sweep.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Optional

import torch

from regbench.solvers.options import SolverOptions
from regbench.solvers.report import SolveReport


@dataclass(frozen=True)
class Reconstruction:
    method: torch.nn.Module
    hyper: Mapping[str, float]
    options: SolverOptions

    def replace(self, **changes) -> "Reconstruction":
        return dataclasses.replace(self, **changes)

    def with_options(self, **changes) -> "Reconstruction":
        return self.replace(options=self.options.replace(**changes))

    def __post_init__(self):
        object.__setattr__(self, "hyper", self.method.hyper(self.hyper))  # complete, names checked

    def __call__(self, sample) -> tuple[torch.Tensor, SolveReport]:
        """The method's reconstruction of a sample, told the operator facts its task states."""
        options = self.options.replace(operator=sample.operator)
        x, info = self.method.reconstruct(sample.y, sample.physics, sample.x0, dict(self.hyper), options)
        return x, SolveReport.of(info)

    def differentiable(self, sample, x_ref: torch.Tensor) -> Optional[torch.Tensor]:
        """x(sample.y) with autograd from y, near the converged x_ref (None: the method has no such path)."""
        options = self.options.replace(operator=sample.operator)
        return self.method.differentiable_reconstruct(
            sample.y, sample.physics, sample.x0, x_ref, dict(self.hyper), options
        )

    def guarded(self, sample) -> tuple[Optional[torch.Tensor], SolveReport, str]:
        """(x_hat or None, solve report, status): a crashing or diverging solve becomes a
        row marked failed with its reason, and the sweep goes on."""
        try:
            x_hat, info = self(sample)
        except (RuntimeError, ValueError, ArithmeticError, TypeError) as err:
            return None, SolveReport(converged=False), f"failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
        status = info.status
        if status.startswith("diverged"):
            return None, info, f"failed: {status}"
        if not bool(torch.isfinite(x_hat).all()):
            return None, info, "failed: non-finite reconstruction" + (f" ({status})" if status != "ok" else "")
        return x_hat, info, status
