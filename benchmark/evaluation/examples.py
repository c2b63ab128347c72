"""Example reconstructions: the first few test images of every probe level, kept as PNGs.

W&B and the HTML report show them as grids (ground truth, initializer, each
method). Per combination: `OUT/examples/<method>__<task>__<probe>/` holds
`L<level>_<image>_{truth,init,recon}.png` (8 bit, clipped to [0, 1]) and
`index.json` (config hash, and per example its level, image id, PSNR/SSIM of the
reconstruction and PSNR of the initializer). Everything is written by rename.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from regbench.results.store import atomic_write, atomic_write_text

# torch and the metrics are imported where used: the report reads examples without them.
if TYPE_CHECKING:
    import torch

INDEX = "index.json"


def label_of(method: str, task: str, probe: str) -> str:
    return f"{method}__{task}__{probe}"


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) in [0, 1] -> (H, W) or (H, W, 3) uint8."""
    import torch

    a = (
        x.detach()
        .float()
        .cpu()
        .reshape(-1, *x.shape[-2:])
        .nan_to_num(0.0)
        .clamp(0, 1)
        .mul(255)
        .round()
        .to(torch.uint8)
        .numpy()
    )
    return a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1)


def png_bytes(x: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(x)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


class ExampleKeeper:
    """Keeps the first `n` test images of every level of one combination (n=0: none)."""

    def __init__(self, n: int, out: Path, common: dict):
        self.n = n
        self.folder = Path(out) / "examples" / label_of(common["method"], common["task"], common["probe"])
        self.index = {key: common[key] for key in ("method", "task", "probe", "config_hash", "seed")}
        self.index["examples"] = []
        self.counts: dict = {}

    def add(self, level, sample, x_hat: torch.Tensor, metrics: dict) -> None:
        if self.counts.get(level, 0) >= self.n:
            return
        self.counts[level] = self.counts.get(level, 0) + 1
        stem = f"L{level}_{re.sub(r'[^A-Za-z0-9._-]', '_', str(sample.image_id))}"
        files = {}
        for kind, x in (("truth", sample.x), ("init", sample.x0), ("recon", x_hat)):
            files[kind] = f"{stem}_{kind}.png"
            blob = png_bytes(x)
            atomic_write(self.folder / files[kind], lambda p, blob=blob: p.write_bytes(blob))
        from regbench.evaluation.metrics import image_metrics

        init_psnr = (
            image_metrics(sample.x0, sample.x, sample.max_pixel)["psnr"]
            if sample.x0.shape == sample.x.shape
            else float("nan")
        )
        self.index["examples"].append(
            {
                "level": level,
                "image_id": str(sample.image_id),
                "psnr": metrics["psnr"],
                "ssim": metrics["ssim"],
                "init_psnr": init_psnr,
                "files": files,
            }
        )
        atomic_write_text(self.folder / INDEX, json.dumps(self.index, indent=1))


def load_examples(out: str | Path) -> list[dict]:
    """Every combination's example index under OUT/examples, with `folder` set; unreadable ones are skipped."""
    found = []
    for path in sorted(Path(out).glob(f"examples/*/{INDEX}")):
        try:
            index = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        found.append({**index, "folder": path.parent})
    return found
