"""Probe ood: test images from other distributions through the task's own operator."""

from __future__ import annotations

from typing import Iterator

from regbench.datasets.images import ImageSet
from regbench.datasets.task import Sample, Task
from regbench.probes.base import Probe


class OutOfDistribution(Probe):
    """Test images from other distributions than the training data; level l uses `sets[l-1]`.

    The task's own operator and noise are applied to them; calibration stays the
    nominal one. Defaults: 1 = scikit-image's bundled images (text, textures,
    microscopy, astronomy), 2 = phantoms.
    """

    def __init__(self, sets: list, levels=None):
        if not sets:
            raise ValueError("ood: sets must name at least one image set")
        self.sets: list[ImageSet] = list(sets)
        super().__init__(levels if levels is not None else range(len(self.sets) + 1))
        if any(not float(lv).is_integer() or not 0 <= lv <= len(self.sets) for lv in self.levels):
            raise ValueError(f"ood levels {self.levels} must be integers in 0..{len(self.sets)} (one per image set)")

    def label(self, level) -> str:
        return "nominal" if level == 0 else self.sets[level - 1].name

    def samples(self, task: Task, level, n, crop, seed: int, device) -> Iterator[Sample]:
        if level == 0:
            yield from task.samples("test", n, crop, seed, device)
            return
        images = self.sets[level - 1]
        for image_id in images.ids()[:n] if n else images.ids():
            x = task.foreign_image(images.load(image_id), crop).unsqueeze(0).to(device)
            y, physics, x0 = task.measure(x, "ood", f"{images.name}/{image_id}", seed)
            yield task.sample(f"{images.name}/{image_id}", x, y, physics, x0)
