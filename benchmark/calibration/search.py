"""Fit a method's calibrated hyperparameters (e.g. lambda) on the calibration images.

Golden-section search of the mean calibration PSNR in log scale, one
hyperparameter after the other (in the order the method declares them), each in
[v / span, v * span] around its current value (the trained value for learned
methods), clipped to the hyperparameter's `bounds`; the current value is kept
unless the search beats it, so no coordinate undoes what the earlier ones gained. When the best value is the
outermost one tried, the optimum may lie beyond the span (a regularizer trained
on denoising at sigma=25/255 needs a far smaller lambda on a task with noise
0.01): the search then steps outward in doubling steps of span/2 (in log scale,
never past the bounds) while the PSNR improves, and refines inside the bracket
found. Integer hyperparameters (iteration counts) are searched the same way and
rounded: each whole number is evaluated once, however many search points round
to it.
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


MAX_STEPS_OUT = 6  # doubling steps beyond the span: up to span * e^(31 * ln(span) / 2) away


def search(
    score: Callable[[float], float], lo: float, hi: float, evals: int, floor: float = -math.inf, ceil: float = math.inf
) -> tuple[float, float]:
    """Maximize score on [lo, hi] (golden section); if the best point is the outermost
    tried, follow the trend outward (never past [floor, ceil]), then refine in the bracket."""
    seen: dict[float, float] = {}

    def f(x):
        if x not in seen:
            seen[x] = score(x)
        return seen[x]

    best, f_best = golden_section(f, lo, hi, evals)
    width = (hi - lo) / 2
    direction = -1 if best == min(seen) else 1 if best == max(seen) else 0
    if direction == 0:
        return best, f_best
    inner, step = best, width / 2
    for _ in range(MAX_STEPS_OUT):
        x = min(max(best + direction * step, floor), ceil)
        if x == best or not f(x) > f_best:  # the PSNR dropped: the optimum lies between inner and x
            break
        inner, best, f_best = best, x, seen[x]
        step *= 2
    else:
        return best, f_best
    x_ref, f_ref = golden_section(f, min(inner, x), max(inner, x), max(3, evals // 2))
    return (x_ref, f_ref) if f_ref > f_best else (best, f_best)


def calibrate(space: dict, start: dict[str, float], psnr_of: Callable[[dict], float], evals: int) -> tuple[dict, float]:
    """Coordinate search over the hyperparameters of `space` (name -> Hyper), one after the other, from
    `start` (all of the method's values); returns (the best values, their calibration PSNR)."""
    best_psnr, current = -math.inf, dict(start)
    for name, hyper in space.items():
        lo, hi = search_interval(current[name], hyper)
        value = (lambda v: float(round(v))) if hyper.integer else (lambda v: v)
        scores: dict[float, float] = {}

        def score(log_v, name=name, value=value, scores=scores):
            v = value(math.exp(log_v))
            if v not in scores:
                scores[v] = psnr_of({**current, name: v})
            return scores[v]

        if value(lo) == value(hi):  # nothing to search (e.g. bounds pin it)
            log_v, best_psnr = math.log(lo), score(math.log(lo))
        else:
            floor, ceil = (math.log(b) if b > 0 else -math.inf for b in search_bounds(hyper))
            log_v, best_psnr = search(score, math.log(lo), math.log(hi), evals, floor, ceil)
            # monotone: the value the coordinate had stays unless the search beat it (with several
            # hyperparameters a golden section can miss it, and one coordinate would undo another)
            log_now = math.log(current[name])
            psnr_now = score(log_now)
            if psnr_now > best_psnr:
                log_v, best_psnr = log_now, psnr_now
        current[name] = value(math.exp(log_v))
    return current, best_psnr


def search_interval(current: float, hyper) -> tuple[float, float]:
    """[v / span, v * span] clipped to the hyperparameter's bounds (integers: to >= 1)."""
    lo, hi = current / hyper.span, current * hyper.span
    if hyper.bounds is not None:
        lo, hi = max(lo, hyper.bounds[0]), min(hi, hyper.bounds[1])
    if hyper.integer:
        lo, hi = max(lo, 1.0), max(hi, 1.0)
    if not 0 < lo <= hi:
        raise ValueError(
            f"calibration interval [{lo}, {hi}] around {current} is empty or not positive; check span/bounds"
        )
    return lo, hi


def search_bounds(hyper) -> tuple[float, float]:
    """How far the outward search may go: the declared bounds (integers: >= 1)."""
    lo, hi = hyper.bounds if hyper.bounds is not None else (0.0, math.inf)
    return (max(lo, 1.0) if hyper.integer else lo), hi
