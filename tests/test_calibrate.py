"""Calibration of several hyperparameters, integer ones (iteration counts) and bounded ones."""
import math

import pytest

from benchmark.calibrate import calibrate, search_interval
from regbench_methods.base import Hyper, Method


class Toy(Method):
    hyperparameters = {
        "iterations": Hyper(8, span=8.0, calibrate=True, integer=True, bounds=(1, 40)),
        "zeta": Hyper(0.3, span=10.0, calibrate=True, bounds=(0.01, 1.0)),
        "fixed": Hyper(2.0),
    }


def test_integer_and_bounded_hyperparameters_are_calibrated_one_after_the_other():
    method = Toy()
    calls = []

    def psnr(hp):
        calls.append(dict(hp))
        assert hp["fixed"] == 2.0
        return 30 - (hp["iterations"] - 5) ** 2 - 10 * (hp["zeta"] - 0.95) ** 2

    hp, best = calibrate(method, psnr, evals=10)
    assert hp["iterations"] == 5.0 and method.hp["iterations"] == 5.0
    assert 0.9 <= hp["zeta"] <= 1.0  # the optimum 0.95 lies inside the bounds
    assert best == pytest.approx(30 - 10 * (hp["zeta"] - 0.95) ** 2)
    first = [c for c in calls if c["zeta"] == 0.3]  # the iteration count is searched first (declared order)
    assert first and all(c["iterations"] == int(c["iterations"]) and 1 <= c["iterations"] <= 40 for c in first)
    later = calls[len(first):]
    assert later and all(c["iterations"] == 5.0 and 0.01 <= c["zeta"] <= 1.0 for c in later)


def test_each_whole_number_is_evaluated_once():
    method = Toy(zeta=0.5)
    seen = []

    def psnr(hp):
        if hp["zeta"] == 0.5:  # the iteration search (zeta still at its start)
            seen.append(hp["iterations"])
        return -abs(hp["iterations"] - 2)

    calibrate(method, psnr, evals=14)
    assert len(seen) == len(set(seen)) and set(seen) <= set(range(1, 65))


def test_search_interval_is_clipped_to_bounds_and_integers_stay_at_least_one():
    assert search_interval(0.3, Hyper(0.3, span=10.0, bounds=(0.01, 1.0))) == pytest.approx((0.03, 1.0))
    assert search_interval(2, Hyper(2, span=8.0, integer=True)) == pytest.approx((1.0, 16.0))
    with pytest.raises(ValueError, match="empty"):
        search_interval(100.0, Hyper(100.0, span=2.0, bounds=(0.01, 1.0)))


def test_a_hyperparameter_pinned_by_its_bounds_is_evaluated_once():
    class Pinned(Method):
        hyperparameters = {"k": Hyper(1, span=1.0, calibrate=True, integer=True)}

    calls = []
    hp, best = calibrate(Pinned(), lambda hp: calls.append(hp) or 7.0, evals=10)
    assert hp["k"] == 1.0 and best == 7.0 and len(calls) == 1
    assert math.isfinite(best)
