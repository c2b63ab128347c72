"""Calibration search: golden section inside the span, the optimum followed beyond it
(never past declared bounds), several hyperparameters, integer and bounded ones."""

import math

import pytest

from regbench.calibration.search import calibrate, search, search_interval
from regbench.methods.base import Hyper, Method


def _calibrate(method, psnr, evals):
    """The search over the method's calibration space, from its own values."""
    return calibrate(method.calibration_space(), method.hp, psnr, evals)


def _counting(peak):
    calls = []

    def score(x):
        calls.append(x)
        return -((x - peak) ** 2)

    return score, calls


def test_optimum_inside_the_span_costs_no_extra_evaluation():
    score, calls = _counting(0.3)
    x, _ = search(score, -math.log(30), math.log(30), 10)
    assert x == pytest.approx(0.3, abs=0.15) and len(calls) == 10


@pytest.mark.parametrize("peak", [-9.0, 7.5])
def test_optimum_beyond_the_span_is_followed_and_refined(peak):
    """A lambda 1e-4 times (or 2000 times) the trained value, with span 30 (ln 30 = 3.4)."""
    score, calls = _counting(peak)
    x, fx = search(score, -math.log(30), math.log(30), 6)
    assert x == pytest.approx(peak, abs=0.5) and fx == max(-((c - peak) ** 2) for c in calls)
    assert len(calls) <= 6 + 4 + 3  # golden section, steps out, refinement


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

    hp, best = _calibrate(method, psnr, evals=10)
    assert hp["iterations"] == 5.0 and method.hp == Toy().hp  # the method keeps its own values
    assert 0.9 <= hp["zeta"] <= 1.0  # the optimum 0.95 lies inside the bounds
    assert best == pytest.approx(30 - 10 * (hp["zeta"] - 0.95) ** 2)
    first = [c for c in calls if c["zeta"] == 0.3]  # the iteration count is searched first (declared order)
    assert first and all(c["iterations"] == int(c["iterations"]) and 1 <= c["iterations"] <= 40 for c in first)
    later = calls[len(first) :]
    assert later and all(c["iterations"] == 5.0 and 0.01 <= c["zeta"] <= 1.0 for c in later)


def test_each_whole_number_is_evaluated_once():
    method = Toy(zeta=0.5)
    seen = []

    def psnr(hp):
        if hp["zeta"] == 0.5 and not moved:  # the iteration search (zeta still at its start)
            seen.append(hp["iterations"])
        else:
            moved.append(hp["zeta"])
        return -abs(hp["iterations"] - 2)

    moved = []
    _calibrate(method, psnr, evals=14)
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
    hp, best = _calibrate(Pinned(), lambda hp: calls.append(hp) or 7.0, evals=10)
    assert hp["k"] == 1.0 and best == 7.0 and len(calls) == 1
    assert math.isfinite(best)


def test_outward_search_stops_at_the_bounds():
    """The optimum lies past the upper bound: the search ends on the bound, not beyond."""
    calls = []

    def score(x):
        calls.append(x)
        return x  # increasing: the optimum is as far right as allowed

    x, _ = search(score, 0.0, 1.0, 6, ceil=2.0)
    assert x == pytest.approx(2.0) and max(calls) <= 2.0


def test_calibration_solves_obey_the_profile_iteration_cap(tmp_path):
    """`+profile.calibrate.max_iter` reaches the calibration solves (and only them), and rows record calib_seconds."""
    import torch
    from conftest import run_of

    from regbench.calibration.fit import fit_hyperparameters
    from regbench.core.instantiate import build

    class Recorder(Method):
        hyperparameters = {"lam": Hyper(1.0, span=4.0, calibrate=True)}
        seen: list = []

        def reconstruct(self, y, physics, x0, hyper, options):
            self.seen.append(options.max_iter)
            return x0 / (1 + abs(math.log(hyper["lam"]))), {}  # best at lam = 1

    run = run_of("profile=smoke", f"cache_dir={tmp_path}", "+profile.calibrate.max_iter=7")
    method = Recorder()
    hp, _, seconds = fit_hyperparameters(run, method, build(run.task.spec), torch.device("cpu"), "recorder")
    assert set(method.seen) == {7} and hp["lam"] == pytest.approx(1.0, rel=0.3) and seconds > 0
    assert run.profile.max_iter > 7


def test_a_coordinate_keeps_its_value_when_the_search_cannot_beat_it():
    """A narrow optimum at the current value that no golden-section point hits: the search
    would move zeta to a worse value; calibration is monotone, so zeta stays 0.3."""
    method = Toy(iterations=5)
    tried = []

    def psnr(hp):
        tried.append(hp["zeta"])
        return 30.0 if abs(hp["zeta"] - 0.3) < 1e-9 else 20.0 - abs(math.log(hp["zeta"]))

    hp, best = _calibrate(method, psnr, evals=8)
    assert hp["zeta"] == 0.3 and best == 30.0
    assert any(abs(z - 0.3) > 1e-3 for z in tried)  # the search did look elsewhere
