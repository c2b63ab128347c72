"""The one place that decides the device."""

from __future__ import annotations

import torch

ALLOWED = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """The device a run uses; on CUDA, also full float32 arithmetic (`full_float32`)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device(name)
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} requested but CUDA is not available; use device=auto or device=cpu")
        full_float32()
        return torch.device(name)
    raise ValueError(f"device={name!r} is not allowed; allowed values: auto, cpu, cuda, cuda:N")


def full_float32() -> None:
    """No TF32 on CUDA: cuDNN convolutions use it by default (10-bit mantissa), so a GPU row would not be
    computed like its CPU row (a tol-1e-6 solve never converged with it). Lower precision is a method's own,
    explicit option (PnP's `bf16`). DEAL's 0.09 dB CUDA/CPU gap was not TF32 but its splines
    (`methods/deal.py`, `KnotExactLinearSpline`)."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def make_deterministic() -> None:
    """Same seed, same machine, same numbers: index_put/scatter backward (the spline
    tables' gradients) otherwise accumulate in thread order on CPU."""
    torch.use_deterministic_algorithms(True, warn_only=True)
