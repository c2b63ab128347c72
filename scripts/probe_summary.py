"""The stability table: per task, one line per method with every probe family's headline number,
from one or more results folders (merged, first folder wins).

    python scripts/probe_summary.py runs/probes-cpu runs/probes-gpu [--methods tv,crr,wcrr,deal,pnp_drunet,diffpir]

Why: `regbench.results.report` lists each probe separately (per level, per probe); a reader comparing
methods wants the families side by side. Columns (drops are PSNR at level 0 minus the level's PSNR,
positive = worse):
  nominal       PSNR at level 0 (noise_sweep's, else any probe's)
  noise x2/x4   noise_sweep drops at levels 1 and 2 (parameters calibrated at x1)
  decay x1->x1/8  noise_decay: PSNR at levels 0 and 3 with the method's parameter-choice rule, and
                "up" when the PSNR rose at every halving of the noise (the convergent-regularization check)
  noise model   noise_model drop, mean over its perturbed levels
  OOD 1 / 2     ood drops at levels 1 and 2
  op. mismatch  operator_mismatch drop, mean over its perturbed levels
  worst-case    worst_case amplification, largest level (random deltas of equal norm in brackets)
  sensitivity   sensitivity probe's mean per-pixel std over noise realizations
  energy monotone  share of the rows (all probes) whose tracked energy never increased (energy-based methods)
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from regbench.results import leaderboard, merge

COLUMNS = [
    "nominal",
    "noise x2 / x4 drop",
    "decay x1 -> x1/8",
    "noise-model drop",
    "OOD drop 1 / 2",
    "op.-mismatch drop",
    "worst-case ampl. (random)",
    "sensitivity std",
    "energy monotone",
]


def _psnr(board: pd.DataFrame, probe: str, level: float) -> float:
    hit = board[(board.probe == probe) & (board.level == level)]
    return float(hit.psnr_mean.iloc[0]) if len(hit) else math.nan


def _fmt(v: float, digits: int = 2) -> str:
    return "–" if v != v else f"{v:.{digits}f}"


def method_line(board: pd.DataFrame, rows: pd.DataFrame) -> dict[str, str]:
    """The table's cells for one (task, method): `board` its aggregated levels, `rows` its rows."""
    level0 = board[board.level == 0]
    nominal = (
        _psnr(board, "noise_sweep", 0)
        if "noise_sweep" in set(board.probe)
        else (float(level0.psnr_mean.iloc[0]) if len(level0) else math.nan)
    )

    def drop(probe: str, level: float) -> float:
        return _psnr(board, probe, 0) - _psnr(board, probe, level)

    def mean_drop(probe: str) -> float:
        part = board[(board.probe == probe) & (board.level != 0)]
        return _psnr(board, probe, 0) - float(part.psnr_mean.mean()) if len(part) else math.nan

    decay = board[board.probe == "noise_decay"].sort_values("level")
    decay_cell = "–"
    if len(decay) > 1:
        rising = bool((decay.psnr_mean.diff().dropna() > 0).all())
        decay_cell = (
            f"{decay.psnr_mean.iloc[0]:.2f} -> {decay.psnr_mean.iloc[-1]:.2f}{' up' if rising else ' not monotone'}"
        )
    worst = board[board.probe == "worst_case"]
    worst_cell = "–"
    if len(worst) and worst.get("amplification", pd.Series(dtype=float)).notna().any():
        worst_cell = f"{worst.amplification.max():.2f} ({worst.random_amplification.max():.2f})"
    sens = board[(board.probe == "sensitivity")]
    sens_v = float(sens.sensitivity_std.mean()) if len(sens) and "sensitivity_std" in sens else math.nan
    energy = rows["energy_monotone"].dropna() if "energy_monotone" in rows else pd.Series(dtype=float)
    energy_cell = f"{energy.astype(bool).mean():.0%} of {len(energy)}" if len(energy) else "–"
    return dict(
        zip(
            COLUMNS,
            [
                _fmt(nominal),
                f"{_fmt(drop('noise_sweep', 1))} / {_fmt(drop('noise_sweep', 2))}",
                decay_cell,
                _fmt(mean_drop("noise_model")),
                f"{_fmt(drop('ood', 1))} / {_fmt(drop('ood', 2))}",
                _fmt(mean_drop("operator_mismatch")),
                worst_cell,
                _fmt(sens_v, 4),
                energy_cell,
            ],
        )
    )


def summary(rows: pd.DataFrame, methods: list[str]) -> str:
    board = leaderboard.aggregate(rows)
    out = []
    for task in sorted(rows.task.unique(), key=lambda t: (t.startswith("ct"), t)):
        out += [f"### {task}", "", "| method | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
        for method in methods:
            mine = board[(board.task == task) & (board.method == method)]
            if mine.empty:
                out.append(f"| {method} | " + " | ".join("–" for _ in COLUMNS) + " |")
                continue
            cells = method_line(mine, rows[(rows.task == task) & (rows.method == method)])
            out.append(f"| {method} | " + " | ".join(cells[c] for c in COLUMNS) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="results folders (merged; the first wins on duplicates)")
    parser.add_argument("--methods", default=None, help="comma-separated (default: every method in the rows)")
    args = parser.parse_args(argv)
    rows = merge.merge(args.folders)
    if rows.empty:
        raise SystemExit(f"no rows in {', '.join(map(str, args.folders))}")
    methods = args.methods.split(",") if args.methods else sorted(rows.method.unique())
    print(summary(rows, methods))


if __name__ == "__main__":
    main()
