"""How sure a ranking is: what the leaderboards add to each mean.

- a 95% confidence interval of each mean PSNR: bootstrap over test images; for samplers (several
  `sample_seed`s per image) the seeds are resampled within each drawn image (nested bootstrap);
- a paired test between each method and the next one down in its (task, probe, level): the
  Wilcoxon signed-rank test on per-image PSNR differences (seed means per image, the images both
  evaluated). A difference not significant at 5% is a tie: the lower method shares the upper one's
  rank, and ties chain down;
- across tasks and probes: each method's mean rank over the cells it ran in;
- rank stability: Kendall's tau between a probe's nominal ranking (its level 0) and its ranking at
  each perturbed level, over the methods both have.

Draws are seeded, so the same rows give the same table.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

CELL = ["task", "probe", "level"]
KEYS = [*CELL, "method"]
ALPHA = 0.05  # significance level of the neighbour test; the interval is 1 - ALPHA
BOOTSTRAP = 2000  # resamples per interval
COLUMNS = ["psnr_ci_low", "psnr_ci_high", "p_next", "tied_next", "rank"]


def _image_seed_matrix(part: pd.DataFrame) -> np.ndarray:
    """PSNR as images x seeds, images and seeds in sorted order (NaN where an image has fewer seeds or a
    reconstruction failed; of repeated (image, seed) rows the first finite PSNR counts)."""
    psnr = part["psnr"].to_numpy(dtype=float)
    if "sample_seed" not in part:
        return psnr[:, None]
    images, image_index = np.unique(part["image_id"].to_numpy(dtype=str), return_inverse=True)
    seeds, seed_index = np.unique(part["sample_seed"].to_numpy(), return_inverse=True)
    wide = np.full((len(images), len(seeds)), np.nan)
    finite = np.isfinite(psnr)
    # reversed so that the first finite row of each (image, seed) is the one written last
    rows = np.flatnonzero(finite)[::-1]
    wide[image_index[rows], seed_index[rows]] = psnr[rows]
    return wide


def bootstrap_interval(values: np.ndarray, rng: np.random.Generator, n: int = BOOTSTRAP) -> tuple[float, float]:
    """Percentile interval of the mean of `values` (images x seeds): images resampled, then the seeds
    of each drawn image (NaNs, failed or absent, left out of each mean)."""
    images, seeds = values.shape
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    if finite.size == 1:
        return float(finite[0]), float(finite[0])
    drawn = values[rng.integers(images, size=(n, images))]  # n x images x seeds
    if seeds > 1:
        pick = rng.integers(seeds, size=(n, images, seeds))
        drawn = np.take_along_axis(drawn, pick, axis=2)
    with np.errstate(all="ignore"):
        means = np.nanmean(drawn.reshape(n, -1), axis=1)
    means = means[np.isfinite(means)]
    low, high = np.percentile(means, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return float(low), float(high)


def paired_p(upper: pd.Series, lower: pd.Series) -> float:
    """Wilcoxon signed-rank p-value of the per-image PSNR differences (images in both, finite);
    NaN when fewer than two images pair up, 1.0 when every difference is zero."""
    from scipy.stats import wilcoxon

    _, up, low = np.intersect1d(
        upper.index.to_numpy(dtype=str), lower.index.to_numpy(dtype=str), assume_unique=True, return_indices=True
    )
    a, b = upper.to_numpy(dtype=float)[up], lower.to_numpy(dtype=float)[low]
    diff = (a - b)[np.isfinite(a) & np.isfinite(b)]
    if len(diff) < 2:
        return math.nan
    if (diff == 0).all():
        return 1.0
    return float(wilcoxon(diff).pvalue)


def annotate(rows: pd.DataFrame, board: pd.DataFrame) -> pd.DataFrame:
    """`board` (one line per task, probe, level, method, best first within a cell) with the columns
    psnr_ci_low/high, p_next (vs the next method down), tied_next and the tie-aware rank."""
    if board.empty:
        return board.assign(**{c: pd.Series(dtype=float) for c in COLUMNS})
    rng = np.random.default_rng(0)
    by_image = rows.groupby([*KEYS, "image_id"])["psnr"].mean()
    per_image = {key: part.droplevel(KEYS) for key, part in by_image.groupby(level=KEYS)}
    groups = dict(tuple(rows.groupby(KEYS, sort=False)))
    extra = []
    for _, cell in board.groupby(CELL, sort=False):
        cell = cell.sort_values("psnr_mean", ascending=False)
        keys = [tuple(k) for k in cell[KEYS].itertuples(index=False)]
        rank = 1
        for i, key in enumerate(keys):
            low, high = bootstrap_interval(_image_seed_matrix(groups[key]), rng)
            p = paired_p(per_image[key], per_image[keys[i + 1]]) if i + 1 < len(keys) else math.nan
            extra.append(
                {
                    **dict(zip(KEYS, key)),
                    "psnr_ci_low": low,
                    "psnr_ci_high": high,
                    "p_next": p,
                    "tied_next": bool(p >= ALPHA) if p == p else False,
                    "rank": rank,
                }
            )
            if not extra[-1]["tied_next"]:
                rank = i + 2
    return board.merge(pd.DataFrame(extra), on=KEYS, how="left")


def mean_ranks(board: pd.DataFrame) -> pd.DataFrame:
    """One line per method: its mean (tie-aware) rank over the (task, probe, level) cells it ran in,
    and how many cells that is; best first."""
    if board.empty or "rank" not in board:
        return pd.DataFrame(columns=["method", "mean_rank", "cells"])
    out = board.groupby("method").agg(mean_rank=("rank", "mean"), cells=("rank", "size")).reset_index()
    return out.sort_values(["mean_rank", "method"], ignore_index=True)


def rank_stability(board: pd.DataFrame) -> pd.DataFrame:
    """One line per task, probe and perturbed level: Kendall's tau between the ranking by mean PSNR at
    the probe's level 0 and at that level, over the methods evaluated at both (NaN below 3 methods)."""
    from scipy.stats import kendalltau

    out = []
    for (task, probe), part in board.groupby(["task", "probe"], sort=False):
        nominal = part[part["level"] == 0].set_index("method")["psnr_mean"]
        for level, perturbed in part[part["level"] != 0].groupby("level", sort=True):
            both = pd.concat([nominal, perturbed.set_index("method")["psnr_mean"]], axis=1, join="inner").dropna()
            tau = float(kendalltau(both.iloc[:, 0], both.iloc[:, 1]).statistic) if len(both) >= 3 else math.nan
            out.append({"task": task, "probe": probe, "level": level, "kendall_tau": tau, "methods": len(both)})
    return pd.DataFrame(out, columns=["task", "probe", "level", "kendall_tau", "methods"])
