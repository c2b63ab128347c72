"""Stability probes: a named family of perturbations with a level; level 0 is the nominal task.

A probe turns (task, level) into test samples. Methods keep the calibration
they got on the nominal task, so a probe measures how a method degrades, not
how well it could be re-tuned.
"""
from __future__ import annotations

from typing import Iterator

from regbench_datasets.task import Sample, Task


class Probe:
    """The task as defined (level 0 only)."""

    def __init__(self, levels=(0,)):
        levels = [float(v) if not float(v).is_integer() else int(v) for v in levels]
        if not levels or levels[0] != 0:
            raise ValueError(f"probe.levels={levels!r} is not allowed; allowed: a list starting with level 0 (the nominal task)")
        self.levels = levels

    def samples(self, task: Task, level, n, crop, seed: int, device) -> Iterator[Sample]:
        return task.samples("test", n, crop, seed, device)


class NoiseSweep(Probe):
    """Level l: the measurement noise std times 2**l (l = -1, 1, 2: x0.5, x2, x4)."""

    def samples(self, task: Task, level, n, crop, seed: int, device) -> Iterator[Sample]:
        return task.samples("test", n, crop, seed, device, noise_scale=2.0**level)
