"""Leaderboard statistics: bootstrap intervals, paired neighbour tests, tie-aware ranks, rank stability."""

import numpy as np
import pandas as pd
import pytest

from regbench.results import leaderboard, statistics


def _rows(method, psnr, seeds=None, task="t", probe="nominal", level=0):
    psnr = np.asarray(psnr, dtype=float)
    images = np.arange(psnr.shape[0])
    if seeds is None:
        return pd.DataFrame(
            {
                "task": task,
                "probe": probe,
                "level": level,
                "method": method,
                "image_id": images,
                "sample_seed": 0,
                "psnr": psnr,
                "ssim": 0.5,
                "seconds": 1.0,
                "iterations": 1,
                "params": 0,
                "train_minutes": 0.0,
                "converged": True,
                "status": "ok",
            }
        )
    return pd.concat(
        [_rows(method, psnr[:, k], task=task, probe=probe, level=level).assign(sample_seed=k) for k in range(seeds)],
        ignore_index=True,
    )


def test_the_bootstrap_interval_of_a_mean_has_the_normal_width():
    values = np.random.default_rng(1).normal(28.0, 1.0, size=(400, 1))
    low, high = statistics.bootstrap_interval(values, np.random.default_rng(0))
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert low < values.mean() < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)


def test_sampler_seeds_widen_the_interval_and_failed_images_are_left_out():
    rng = np.random.default_rng(2)
    image_means = rng.normal(25.0, 1.0, size=(40, 1))
    seeds = image_means + rng.normal(0, 2.0, size=(40, 3))  # each image sampled with 3 seeds
    nested = statistics.bootstrap_interval(seeds, np.random.default_rng(0))
    means_only = statistics.bootstrap_interval(seeds.mean(axis=1, keepdims=True), np.random.default_rng(0))
    assert nested[1] - nested[0] > means_only[1] - means_only[0]
    with_failure = np.vstack([image_means, [[np.nan]]])
    assert np.isfinite(statistics.bootstrap_interval(with_failure, np.random.default_rng(0))).all()


def test_a_consistent_gap_is_significant_and_noise_is_a_tie_sharing_the_rank():
    rng = np.random.default_rng(3)
    base = rng.normal(27.0, 1.5, size=30)
    rows = pd.concat(
        [
            _rows("a", base + 0.5 + rng.normal(0, 0.05, 30)),  # better on every image
            _rows("b", base),
            _rows("c", base - 0.002 + rng.normal(0, 0.3, 30)),  # the same up to noise
            _rows("d", base - 2.0),
        ],
        ignore_index=True,
    )
    board = leaderboard.aggregate(rows).set_index("method")
    assert board.loc["a", "p_next"] < 0.001 and not board.loc["a", "tied_next"]
    assert board.loc["b", "p_next"] > 0.05 and board.loc["b", "tied_next"]
    assert list(board.loc[["a", "b", "c", "d"], "rank"]) == [1, 2, 2, 4]
    assert np.isnan(board.loc["d", "p_next"])
    md = leaderboard.to_markdown(board.reset_index())
    assert "| 95% CI" in md and "Wilcoxon signed-rank" in md and "### Mean rank" in md


def test_mean_rank_and_kendall_tau_of_a_probe_that_reverses_the_ranking():
    rows = pd.concat(
        [_rows(m, [p0] * 4, probe="noise_sweep", level=0) for m, p0 in (("a", 30.0), ("b", 29.0), ("c", 28.0))]
        + [
            _rows(m, [p1, p1 + 0.1, p1 - 0.1, p1], probe="noise_sweep", level=1)
            for m, p1 in (("a", 20.0), ("b", 21.0), ("c", 22.0))
        ],
        ignore_index=True,
    )
    board = leaderboard.aggregate(rows)
    stability = statistics.rank_stability(board)
    assert stability[["probe", "level", "methods"]].values.tolist() == [["noise_sweep", 1, 3]]
    assert stability.kendall_tau.iloc[0] == pytest.approx(-1.0)
    ranks = statistics.mean_ranks(board).set_index("method")
    assert ranks.cells.tolist() == [2, 2, 2] and ranks.mean_rank.max() <= 3


def test_the_image_seed_matrix_sorts_images_and_seeds_and_leaves_gaps_as_nan():
    part = pd.DataFrame(
        {
            "image_id": ["b", "a", "b", "a", "a"],
            "sample_seed": [1, 0, 0, 1, 1],
            "psnr": [21.0, 30.0, 20.0, np.nan, 31.0],  # (a, 1): the failed row is left out, the finite one kept
        }
    )
    np.testing.assert_array_equal(statistics._image_seed_matrix(part), [[30.0, 31.0], [20.0, 21.0]])
    gap = part.iloc[:3]  # a has no seed 1
    np.testing.assert_array_equal(statistics._image_seed_matrix(gap), [[30.0, np.nan], [20.0, 21.0]])


def test_the_paired_test_uses_only_the_images_both_methods_have_finite():
    upper = pd.Series([30.0, 31.0, 32.0, np.nan, 33.0], index=["a", "b", "c", "d", "e"])
    lower = pd.Series([29.0, 30.5, 31.0, 20.0, 35.0], index=["b", "a", "c", "d", "f"])
    # pairs a (30 - 30.5), b (31 - 29), c (32 - 31); d has no finite upper, e and f are unpaired
    expected = __import__("scipy").stats.wilcoxon([-0.5, 2.0, 1.0]).pvalue
    assert statistics.paired_p(upper, lower) == pytest.approx(expected)
    assert np.isnan(statistics.paired_p(upper[["a"]], lower))
