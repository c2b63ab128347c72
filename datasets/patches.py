"""Random training patches with flips and 90-degree rotations, reproducible by seed."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from regbench.datasets.images import ImageSet


class PatchSampler:
    def __init__(self, images: ImageSet, n_images: int | None = None, seed: int = 0, device="cpu"):
        ids = images.ids()[:n_images] if n_images else images.ids()
        # uint8 in memory: BSD400 is ~60 MB this way instead of ~250 MB
        self.images = [
            (images.load(i) * 255).round().to(torch.uint8) for i in tqdm(ids, desc="load patches", mininterval=5)
        ]
        self.gen = torch.Generator().manual_seed(seed)
        self.device = torch.device(device)

    def state_dict(self) -> dict:  # where the random draws are: a resumed training continues them
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])

    def _randint(self, high: int) -> int:
        return int(torch.randint(high, (1,), generator=self.gen))

    def sample(self, batch: int, size: int) -> torch.Tensor:
        out = []
        for _ in range(batch):
            img = self.images[self._randint(len(self.images))]
            h, w = img.shape[-2:]
            top, left = self._randint(h - size + 1), self._randint(w - size + 1)
            p = img[..., top : top + size, left : left + size]
            p = torch.rot90(p, self._randint(4), dims=(-2, -1))
            if self._randint(2):
                p = p.flip(-1)
            out.append(p)
        return (torch.stack(out).float() / 255.0).to(self.device)
