"""Calibration search: golden section inside the span, and the optimum followed beyond it."""
import math

import pytest

from benchmark.calibrate import search


def _counting(peak):
    calls = []

    def score(x):
        calls.append(x)
        return -((x - peak) ** 2)

    return score, calls


def test_optimum_inside_the_span_costs_no_extra_evaluation():
    score, calls = _counting(0.3)
    x, _ = search(score, 0.0, math.log(30), 10)
    assert x == pytest.approx(0.3, abs=0.15) and len(calls) == 10


@pytest.mark.parametrize("peak", [-9.0, 7.5])
def test_optimum_beyond_the_span_is_followed_and_refined(peak):
    """A lambda 1e-4 times (or 2000 times) the trained value, with span 30 (ln 30 = 3.4)."""
    score, calls = _counting(peak)
    x, fx = search(score, 0.0, math.log(30), 6)
    assert x == pytest.approx(peak, abs=0.5) and fx == max(-((c - peak) ** 2) for c in calls)
    assert len(calls) <= 6 + 4 + 3  # golden section, steps out, refinement
