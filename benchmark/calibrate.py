"""Fit a method's calibrated hyperparameters (e.g. lambda) on the calibration images.

Golden-section search of the mean calibration PSNR in log scale, one
hyperparameter after the other (in the order the method declares them), each in
[v / span, v * span] around its current value (the trained value for learned
methods), clipped to the hyperparameter's `bounds`. Integer hyperparameters
(iteration counts) are searched the same way and rounded: each whole number is
evaluated once, however many search points round to it.
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
        lo, hi = search_interval(method.hp[name], hyper)
        value = (lambda v: float(round(v))) if hyper.integer else (lambda v: v)
        scores: dict[float, float] = {}

        def score(log_v, name=name, value=value, scores=scores):
            v = value(math.exp(log_v))
            if v not in scores:
                scores[v] = psnr_of({**method.hp, name: v})
            return scores[v]

        if value(lo) == value(hi):  # nothing to search (e.g. bounds pin it)
            log_v, best_psnr = math.log(lo), score(math.log(lo))
        else:
            log_v, best_psnr = golden_section(score, math.log(lo), math.log(hi), evals)
        method.hp[name] = value(math.exp(log_v))
    return dict(method.hp), best_psnr


def search_interval(current: float, hyper) -> tuple[float, float]:
    """[v / span, v * span] clipped to the hyperparameter's bounds (integers: to >= 1)."""
    lo, hi = current / hyper.span, current * hyper.span
    if hyper.bounds is not None:
        lo, hi = max(lo, hyper.bounds[0]), min(hi, hyper.bounds[1])
    if hyper.integer:
        lo, hi = max(lo, 1.0), max(hi, 1.0)
    if not 0 < lo <= hi:
        raise ValueError(f"calibration interval [{lo}, {hi}] around {current} is empty or not positive; check span/bounds")
    return lo, hi
