"""Image quality metrics (deepinv's), on the data range [0, 1]."""
from __future__ import annotations

import functools

import torch
from deepinv.loss.metric import PSNR, SSIM


@functools.lru_cache(maxsize=None)
def _metrics(max_pixel: float):
    return PSNR(max_pixel=max_pixel), SSIM(max_pixel=max_pixel)


@torch.no_grad()
def image_metrics(x_hat: torch.Tensor, x: torch.Tensor, max_pixel: float = 1.0) -> dict:
    psnr, ssim = _metrics(max_pixel)
    return {"psnr": float(psnr(x_hat, x).mean()), "ssim": float(ssim(x_hat, x).mean())}


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated since the last reset. CPU: the process's resident high-water mark."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
