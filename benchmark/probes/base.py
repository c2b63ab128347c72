"""Stability probes: a named family of perturbations with a level; level 0 is the nominal task.

A probe turns (task, level) into test samples, and may add columns to each row
(`extra`). Methods keep the calibration they got on the nominal task (noise_decay
moves it by the method's own parameter-choice rule, `solving`), so a probe
measures how a method degrades, not how well it could be re-tuned. A probe is
handed the calibrated `Reconstruction` (method, hyperparameters, options) and
never changes the method. `label(level)`
names what a level is (rows carry it as `variant`); `adapt` makes data that
depend on the method (worst_case); `incompatible` rejects task classes before a
sweep starts.
"""

from __future__ import annotations

from typing import Iterator

import torch

from regbench.datasets.task import Sample, Task
from regbench.evaluation.reconstruct import Reconstruction


class Probe:
    """The task as defined (level 0 only)."""

    def __init__(self, levels=(0,)):
        levels = [float(v) if not float(v).is_integer() else int(v) for v in levels]
        if not levels or levels[0] != 0:
            raise ValueError(
                f"probe.levels={levels!r} is not allowed; allowed: a list starting with level 0 (the nominal task)"
            )
        self.levels = levels

    def label(self, level) -> str:
        return "nominal" if level == 0 else f"level {level}"

    def samples(self, task: Task, level, n, crop, seed: int, device) -> Iterator[Sample]:
        return task.samples("test", n, crop, seed, device)

    @classmethod
    def incompatible(cls, task_cls: type) -> str | None:
        """Why this probe cannot run tasks of class `task_cls` (checked before a sweep starts), or None."""
        return None

    def solving(self, recon: Reconstruction, level) -> tuple[Reconstruction, dict]:
        """(the reconstruction `level` is evaluated with, columns for its rows); default: as calibrated."""
        return recon, {}

    def adapt(self, recon: Reconstruction, task: Task, sample: Sample, level, seed: int) -> Sample:
        """The sample the method is evaluated on, when it depends on the method (default: as it is)."""
        return sample

    def extra(self, recon: Reconstruction, task: Task, sample: Sample, x_hat: torch.Tensor, seed: int) -> dict:
        """Columns this probe adds to a row (none by default)."""
        return {}
