"""Probe operator_mismatch: data from a perturbed operator, solved with the nominal one."""

from __future__ import annotations

from typing import Iterator

from regbench.datasets.task import Sample, Task
from regbench.probes.base import Probe


class OperatorMismatch(Probe):
    """Data from a perturbed operator, reconstruction with the nominal one (and the nominal noise).

    Level l (the task's `mismatch`): CT every angle jittered by U[-0.7, 0.7] x |l| degrees and the
    detector shifted by l/2 pixels; deblurring the kernel width x (1 + 0.2 l); MRI the sampled
    k-space columns shifted by l lines. Tasks without a mismatch model (denoising, super-resolution,
    inpainting) are rejected before a sweep starts.
    """

    def __init__(self, levels=(0, -1, 1, 2)):
        super().__init__(levels)

    @classmethod
    def incompatible(cls, task_cls: type) -> str | None:
        if getattr(task_cls, "mismatch", None):
            return None
        return (
            f"probe operator_mismatch needs a task with an operator-mismatch model; {task_cls.__name__} has none "
            "(tasks with one: ct_*, deblur_*, mri_*)"
        )

    def label(self, level) -> str:
        return "nominal" if level == 0 else f"mismatch {level:+g}"

    def samples(self, task: Task, level, n, crop, seed: int, device) -> Iterator[Sample]:
        if level == 0:
            yield from task.samples("test", n, crop, seed, device)
            return
        why = self.incompatible(type(task))
        if why:
            raise ValueError(why)
        ids = task.test.ids()
        for image_id in ids[:n] if n else ids:
            x = task.image("test", image_id, crop).unsqueeze(0).to(device)
            y, physics, x0 = task.measure(x, "test", image_id, seed, mismatch=level)
            yield task.sample(image_id, x, y, physics, x0)
