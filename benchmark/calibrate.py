"""Fit a method's calibrated hyperparameters (e.g. lambda) on the calibration images.

Golden-section search of the mean calibration PSNR in log scale, one
hyperparameter after the other, each in [v / span, v * span] around its
current value (the trained value for learned methods).
"""
from __future__ import annotations

import math
from typing import Callable

GOLDEN = (math.sqrt(5) - 1) / 2


def golden_section(score: Callable[[float], float], lo: float, hi: float, evals: int) -> tuple[float, float]:
    """Maximize score over [lo, hi] with `evals` evaluations; returns (best x, best score)."""
    if evals < 3:
        raise ValueError(f"calibrate.evals must be >= 3, got {evals}")
    seen: dict[float, float] = {}

    def f(x):
        if x not in seen:
            seen[x] = score(x)
        return seen[x]

    a, b = lo, hi
    c, d = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
    fc, fd = f(c), f(d)
    while len(seen) < evals:
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - GOLDEN * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + GOLDEN * (b - a)
            fd = f(d)
    best = max(seen, key=seen.get)
    return best, seen[best]


def calibrate(method, psnr_of: Callable[[dict], float], evals: int) -> tuple[dict, float]:
    """Set method.hp to the best values found; returns (hp, calibration PSNR)."""
    best_psnr = -math.inf
    for name, hyper in method.calibration_space().items():
        center = math.log(method.hp[name])
        width = math.log(hyper.span)

        def score(log_v, name=name):
            return psnr_of({**method.hp, name: math.exp(log_v)})

        log_v, best_psnr = golden_section(score, center - width, center + width, evals)
        method.hp[name] = math.exp(log_v)
    return dict(method.hp), best_psnr
