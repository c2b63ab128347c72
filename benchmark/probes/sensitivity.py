"""Probe sensitivity: the spread of reconstructions over noise realizations."""

from __future__ import annotations

from dataclasses import replace

import torch

from regbench.core.hashing import stable_seed
from regbench.datasets.task import Sample, Task
from regbench.evaluation.reconstruct import Reconstruction
from regbench.probes.base import Probe


class Sensitivity(Probe):
    """Per-pixel std of the reconstruction over K noise realizations of the same image.

    Adds `sensitivity_std` (mean over pixels of the per-pixel std) and
    `sensitivity_max` to each row; the row's PSNR is that of the first realization.
    """

    def __init__(self, realizations: int = 8, levels=(0,)):
        super().__init__(levels)
        if int(realizations) < 2:
            raise ValueError(f"sensitivity.realizations={realizations} is not allowed; allowed: an integer >= 2")
        self.realizations = int(realizations)

    def label(self, level) -> str:
        return f"{self.realizations} noise realizations"

    def extra(self, recon: Reconstruction, task: Task, sample: Sample, x_hat, seed: int) -> dict:
        stack = [x_hat]
        for k in range(1, self.realizations):
            y, physics, x0 = task.measure(sample.x, "test", sample.image_id, stable_seed("sensitivity", seed, k))
            x_k = recon.guarded(replace(sample, y=y, physics=physics, x0=x0))[0]
            if x_k is not None:  # a failed realization is left out (and the count says so)
                stack.append(x_k)
        std = torch.stack(stack).std(dim=0)
        return {"sensitivity_std": float(std.mean()), "sensitivity_max": float(std.max()), "realizations": len(stack)}
