"""One line per task: PSNR / SSIM of the baseline and every method, and the compute each
(task, method) took (calibration + the sum of per-image seconds), from a results folder.

    python scripts/task_summary.py runs/tasks-cpu [--methods initializer,tv,crr,wcrr,pnp_drunet]

Why: the task registry's summary (one row per task, methods side by side, and where the
time went) is a pivot the per-level leaderboard does not show.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def summary(rows: pd.DataFrame, methods: list[str]) -> str:
    rows = rows[rows.level == 0]
    g = rows.groupby(["task", "method"]).agg(
        psnr=("psnr", "mean"),
        ssim=("ssim", "mean"),
        n=("image_id", "nunique"),
        sec=("seconds", "sum"),
        calib=("calib_seconds", "first"),
    )
    g["minutes"] = (g.sec + g.calib.fillna(0)) / 60
    lines = [
        "| task | images | " + " | ".join(methods) + " | minutes (calibration + evaluation) |",
        "|---" * (len(methods) + 3) + "|",
    ]
    for task in sorted(rows.task.unique(), key=lambda t: (not t.startswith("ct"), t)):
        mine = g.loc[task]
        cells = [f"{mine.loc[m].psnr:.2f} / {mine.loc[m].ssim:.3f}" if m in mine.index else "–" for m in methods]
        minutes = ", ".join(f"{m} {mine.loc[m].minutes:.0f}" for m in methods if m in mine.index and m != "initializer")
        lines.append(
            f"| {task} | {int(mine.n.max())} | " + " | ".join(cells) + f" | {mine.minutes.sum():.0f} ({minutes}) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a results folder (its rows/*.parquet)")
    parser.add_argument("--methods", default=None, help="comma-separated (default: every method in the rows)")
    args = parser.parse_args()
    files = sorted((args.results / "rows").glob("*.parquet"))
    if not files:
        raise SystemExit(f"no rows under {args.results / 'rows'}")
    rows = pd.concat([pd.read_parquet(f) for f in files])
    print(summary(rows, args.methods.split(",") if args.methods else sorted(rows.method.unique())))


if __name__ == "__main__":
    main()
