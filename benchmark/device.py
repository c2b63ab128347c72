"""The one place that decides the device."""
from __future__ import annotations

import torch

ALLOWED = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu" or name.startswith("cuda"):
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device={name!r} requested but CUDA is not available; use device=auto or device=cpu")
        return torch.device(name)
    raise ValueError(f"device={name!r} is not allowed; allowed values: auto, cpu, cuda, cuda:N")


def make_deterministic() -> None:
    """Same seed, same machine, same numbers: index_put/scatter backward (the spline
    tables' gradients) otherwise accumulate in thread order on CPU."""
    torch.use_deterministic_algorithms(True, warn_only=True)
