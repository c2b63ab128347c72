"""Leaderboard: one line per method x task x probe x level, aggregated over test images.

Failed images (crash, NaN) are counted in `failed`, not hidden: PSNR/SSIM means
are over the images that produced a reconstruction, `converged` over all.
"""

from __future__ import annotations

import pandas as pd

from regbench.results import references, statistics

KEYS = ["task", "probe", "level", "method"]
# probe columns averaged per level when rows have them (energy_monotone: the fraction of monotone solves)
OPTIONAL_MEANS = ("sensitivity_std", "amplification", "random_amplification", "energy_monotone")


def aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    if rows.empty:
        return pd.DataFrame(
            columns=KEYS
            + [
                "psnr_mean",
                "psnr_std",
                "ssim_mean",
                "ssim_std",
                "seconds_mean",
                "params",
                "train_minutes",
                "n_images",
                "converged_frac",
                "n_failed",
                "seed_std",
                *statistics.COLUMNS,
            ]
        )
    rows = rows.assign(failed=rows["status"].astype(str).str.startswith("failed") if "status" in rows else False)
    if "energy_monotone" in rows:  # None for methods without an energy
        rows = rows.assign(
            energy_monotone=pd.to_numeric(
                rows["energy_monotone"].map(lambda v: float("nan") if v is None or v != v else float(bool(v))),
                errors="coerce",
            )
        )
    g = rows.groupby(KEYS, sort=False)
    board = g.agg(
        psnr_mean=("psnr", "mean"),
        psnr_std=("psnr", "std"),
        ssim_mean=("ssim", "mean"),
        ssim_std=("ssim", "std"),
        seconds_mean=("seconds", "mean"),
        iterations_mean=("iterations", "mean"),
        params=("params", "max"),
        train_minutes=("train_minutes", "max"),
        n_images=("image_id", "nunique"),
        converged_frac=("converged", "mean"),
        n_failed=("failed", "sum"),
        **({"variant": ("variant", "first")} if "variant" in rows else {}),
        **({"training": ("training", "first")} if "training" in rows else {}),
        **({"weights": ("weights", "first")} if "weights" in rows else {}),
        **{c: (c, "mean") for c in OPTIONAL_MEANS if c in rows},
    ).reset_index()
    board[["psnr_std", "ssim_std"]] = board[["psnr_std", "ssim_std"]].fillna(0.0)
    board["seed_std"] = seed_spread(rows).reindex(pd.MultiIndex.from_frame(board[KEYS])).fillna(0.0).to_numpy()
    board = statistics.annotate(rows, board)  # intervals, neighbour tests, tie-aware ranks
    return board.sort_values(
        ["task", "probe", "level", "psnr_mean"], ascending=[True, True, True, False], ignore_index=True
    )


def seed_spread(rows: pd.DataFrame) -> pd.Series:
    """Samplers (rows with several `sample_seed`s per image): the PSNR std across seeds of
    each image, averaged over images; 0 for deterministic methods."""
    if "sample_seed" not in rows or rows.empty:
        return pd.Series(dtype=float)
    per_image = rows.groupby(KEYS + ["image_id"], sort=False)["psnr"].std().fillna(0.0)
    return per_image.groupby(level=KEYS, sort=False).mean()


def to_markdown(board: pd.DataFrame) -> str:
    if board.empty:
        return "# regbench leaderboard\n\nNo finished combinations yet.\n"
    lines = ["# regbench leaderboard", ""]
    for (task, probe, level), part in board.groupby(["task", "probe", "level"], sort=False):
        variant = (
            f" ({part['variant'].iloc[0]})" if "variant" in part and isinstance(part["variant"].iloc[0], str) else ""
        )
        lines += [f"## {task} / {probe} / level {level}{variant}", ""]
        table = pd.DataFrame(
            {
                "rank": part["rank"].astype(
                    int
                ),  # shared with the method above when the paired test finds no difference
                "method": part["method"],
                "PSNR (dB)": [f"{m:.2f} ± {s:.2f}" for m, s in zip(part["psnr_mean"], part["psnr_std"])],
                "95% CI": [interval(lo, hi) for lo, hi in zip(part["psnr_ci_low"], part["psnr_ci_high"])],
                "p vs next": part["p_next"].map(lambda p: "–" if p != p else f"{p:.3f}"),
                "SSIM": [f"{m:.4f} ± {s:.4f}" for m, s in zip(part["ssim_mean"], part["ssim_std"])],
                "seconds/image": part["seconds_mean"].map(lambda v: f"{v:.2f}"),
                "iterations": part["iterations_mean"].map(lambda v: f"{v:.0f}"),
                "converged": part["converged_frac"].map(lambda v: f"{100 * v:.0f}%"),
                "params": part["params"].astype(int),
                "train min": part["train_minutes"].map(lambda v: f"{v:.1f}"),
                "seed std": part["seed_std"].map(lambda v: f"{v:.2f}"),  # samplers: PSNR std across seeds, per image
                "images": part["n_images"],
                "failed": part["n_failed"].astype(int),  # PSNR/SSIM are means over the images that did not fail
            }
        )
        if "weights" in part:  # trained by regbench, external (with its hash) or none: apart at a glance
            table.insert(2, "weights", part["weights"].fillna("–").to_numpy())
        if probe == "nominal":  # the published value of each (method, task) and the gap to it
            refs = references.with_references(part[["task", "method", "psnr_mean"]])
            if refs["reference_psnr"].notna().any():
                at = table.columns.get_loc("95% CI") + 1
                table.insert(
                    at, "published", refs["reference_psnr"].map(lambda v: "–" if v != v else f"{v:.2f}").to_numpy()
                )
                table.insert(at + 1, "gap", refs["gap_db"].map(lambda v: "–" if v != v else f"{v:+.2f}").to_numpy())
        for column, name in (
            ("sensitivity_std", "sensitivity std"),
            ("amplification", "amplification"),
            ("random_amplification", "random ampl."),
            ("energy_monotone", "energy monotone"),
        ):
            if column in part and part[column].notna().any():
                table[name] = part[column].map(lambda v: f"{v:.4f}")
        lines += [table.to_markdown(index=False), ""]
    lines += statistics_markdown(board)
    crossed = training_table(board)
    if not crossed.empty:
        lines += [
            "## Method x training",
            "",
            "PSNR (dB) on the nominal task: one line per architecture, one column per training scheme "
            "(–: the pair was not run).",
            "",
            training_markdown(crossed),
            "",
        ]
    summary = probe_summary(board)
    if not summary.empty:
        lines += [
            "## Probe summaries",
            "",
            "drop: PSNR at level 0 minus the mean over perturbed levels; auc: mean PSNR over the levels "
            "(trapezoid in level order); sensitivity std: mean per-pixel std over noise realizations; "
            "amplification: worst_case's ||x(y+delta) - x(y)|| / ||delta||, the largest per-level mean "
            "(random: the same for random deltas of equal norm).",
            "",
            summary.round(4).to_markdown(index=False),
            "",
        ]
    return "\n".join(lines)


def interval(low: float, high: float) -> str:
    return "–" if low != low else f"[{low:.2f}, {high:.2f}]"


def statistics_markdown(board: pd.DataFrame) -> list[str]:
    """The sections on how sure the rankings are: the legend, mean ranks, rank stability."""
    lines = [
        "## How sure the rankings are",
        "",
        f"95% CI: bootstrap over test images (samplers: seeds resampled within each image), "
        f"{statistics.BOOTSTRAP} resamples. p vs next: Wilcoxon signed-rank test of the per-image PSNR "
        f"differences to the next method down; p >= {statistics.ALPHA} is a tie, and a tied method shares "
        "the rank of the one above.",
        "",
    ]
    ranks = statistics.mean_ranks(board)
    if len(ranks) > 1:
        lines += [
            "### Mean rank over tasks, probes and levels",
            "",
            ranks.assign(mean_rank=ranks["mean_rank"].map(lambda v: f"{v:.2f}")).to_markdown(index=False),
            "",
        ]
    stability = statistics.rank_stability(board)
    if not stability.empty:
        lines += [
            "### Rank stability",
            "",
            "Kendall's tau between each probe's nominal ranking (level 0) and its ranking at each level "
            "(1: same order; NaN: fewer than 3 methods).",
            "",
            stability.round(3).to_markdown(index=False),
            "",
        ]
    return lines


def probe_summary(board: pd.DataFrame) -> pd.DataFrame:
    """One line per task x probe x method, for probes with perturbed levels: PSNR at
    level 0, at the worst level, the mean drop from level 0 over the perturbed levels,
    the area under the degradation curve (mean PSNR over all levels, trapezoid in
    level order), the sensitivity std and the worst-case amplification (largest per-level mean,
    with the random-delta one beside it) where the probe measured them."""
    out = []
    for (task, probe, method), part in board.groupby(["task", "probe", "method"], sort=False):
        part = part.sort_values("level")
        nominal_psnr = part.loc[part.level == 0, "psnr_mean"]
        perturbed = part[part.level != 0]
        row = {"task": task, "probe": probe, "method": method}
        if "sensitivity_std" in part and part["sensitivity_std"].notna().any():
            row["sensitivity_std"] = float(part["sensitivity_std"].mean())
        for column in ("amplification", "random_amplification"):
            if column in part and part[column].notna().any():
                row[column] = float(part[column].max())
        if len(row) == 3 and (perturbed.empty or nominal_psnr.empty):
            continue
        if not perturbed.empty and not nominal_psnr.empty:
            p0 = float(nominal_psnr.iloc[0])
            psnr, level = part["psnr_mean"].to_numpy(), part["level"].to_numpy(dtype=float)
            span = level[-1] - level[0]
            auc = float(((psnr[1:] + psnr[:-1]) / 2 * (level[1:] - level[:-1])).sum() / span) if span > 0 else p0
            worst = perturbed.loc[perturbed.psnr_mean.idxmin()]
            row.update(
                psnr_nominal=p0,
                psnr_worst=float(worst.psnr_mean),
                worst_level=worst.level,
                drop_db=p0 - float(perturbed.psnr_mean.mean()),
                auc_psnr=auc,
            )
        out.append(row)
    return pd.DataFrame(out)


def nominal(rows: pd.DataFrame) -> pd.DataFrame:
    """The overall leaderboard: one line per task x method on the nominal task (level 0 of any probe).

    Level 0 of every probe is the same nominal task, so an image evaluated under
    several probes counts once (first row kept).
    """
    same = ["task", "method", "seed", "image_id"] + (["sample_seed"] if "sample_seed" in rows else [])
    base = rows[rows["level"] == 0].drop_duplicates(same)
    board = aggregate(base.assign(probe="nominal", level=0))
    return board.drop(columns=["probe", "level"]).sort_values(
        ["task", "psnr_mean"], ascending=[True, False], ignore_index=True
    )


def probe_table(board: pd.DataFrame, probe: str) -> pd.DataFrame:
    """One line per task x method of one probe: PSNR and SSIM at each of its levels (columns `psnr@<level>`)."""
    part = board[board["probe"] == probe]
    if part.empty:
        return pd.DataFrame(columns=["task", "method"])
    wide = []
    for metric in ("psnr", "ssim"):
        table = part.pivot_table(
            index=["task", "method"], columns="level", values=f"{metric}_mean", aggfunc="first", dropna=False
        )  # dropna=False: a method whose every image failed keeps its (empty) line
        table = table[sorted(table.columns)]
        table.columns = [f"{metric}@{level}" for level in table.columns]
        wide.append(table)
    table = pd.concat(wide, axis=1).reset_index()
    first = f"psnr@{min(part['level'].unique(), key=abs)}"  # sort by the level closest to nominal
    return table.sort_values(["task", first], ascending=[True, False], ignore_index=True)


def training_markdown(crossed: pd.DataFrame) -> str:
    """training_table as markdown: PSNR to two decimals, – where the pair was not run."""
    cells = crossed.map(lambda v: ("–" if v != v else f"{v:.2f}") if isinstance(v, float) else v)
    return cells.to_markdown(index=False, disable_numparse=True)


def training_table(board: pd.DataFrame) -> pd.DataFrame:
    """Method x training: one line per task x architecture (a label's part before `+`), one column per
    training scheme, cells the nominal PSNR mean (level 0; the `nominal` probe's where several probes
    ran). Empty unless some architecture was trained under more than one scheme."""
    if board.empty or "training" not in board:
        return pd.DataFrame()
    part = board[(board["level"] == 0) & board["training"].notna() & (board["training"] != "none")]
    part = part.assign(architecture=part["method"].str.split("+").str[0])
    if not (part.groupby(["task", "architecture"])["training"].nunique() > 1).any():
        return pd.DataFrame()
    part = part.assign(
        relabelled=part["method"].str.contains("+", regex=False),  # the YAML's training first
        later_probe=part["probe"] != "nominal",
    )
    part = part.sort_values(["relabelled", "later_probe"]).drop_duplicates(["task", "architecture", "training"])
    wide = part.pivot(index=["task", "architecture"], columns="training", values="psnr_mean")
    wide = wide[sorted(wide.columns)].reset_index().rename(columns={"architecture": "method"})
    wide.columns.name = None
    return wide
