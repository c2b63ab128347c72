"""One reconstruction of a sample, and its guarded form that turns a failed solve into a row."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger("regbench")


def reconstruct(method, sample, solver: dict):
    """The method's reconstruction of a sample, told the operator facts its task states."""
    return method.reconstruct(sample.y, sample.physics, sample.x0, {**solver, "operator": sample.operator})


def guarded_reconstruct(method, sample, solver: dict):
    """(x_hat or None, solve info, status): a crashing or diverging solve becomes a
    row marked failed with its reason, and the sweep goes on."""
    try:
        x_hat, info = reconstruct(method, sample, solver)
    except (RuntimeError, ValueError, ArithmeticError) as err:
        return None, {"converged": False}, f"failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
    status = info.get("status", "ok")
    if status.startswith("diverged"):
        return None, info, f"failed: {status}"
    if not bool(torch.isfinite(x_hat).all()):
        return None, info, "failed: non-finite reconstruction" + (f" ({status})" if status != "ok" else "")
    return x_hat, info, status
