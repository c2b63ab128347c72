"""The report's plots (matplotlib, PNG bytes): each task's means with their intervals, the probes'
degradation curves and the solvers' convergence traces; also written as OUT/plots/*.png."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from regbench.evaluation import convergence
from regbench.results.store import atomic_write


# -- plots ---------------------------------------------------------------------
def nominal_cells(board: pd.DataFrame) -> pd.DataFrame:
    """Level 0 of each task and method, the `nominal` probe's where several probes ran."""
    part = board[board["level"] == 0]
    part = part.assign(later=part["probe"] != "nominal").sort_values("later")
    return part.drop_duplicates(["task", "method"]).drop(columns="later")


def intervals_png(part: pd.DataFrame, task: str) -> bytes:
    """Each method's mean PSNR on the nominal task with its 95% bootstrap interval, best on top."""
    from matplotlib.figure import Figure

    part = part.sort_values("psnr_mean")
    fig = Figure(figsize=(7, 0.35 * len(part) + 1.2), dpi=100, layout="constrained")
    ax = fig.subplots()
    low = (part["psnr_mean"] - part["psnr_ci_low"]).clip(lower=0)
    high = (part["psnr_ci_high"] - part["psnr_mean"]).clip(lower=0)
    ax.errorbar(part["psnr_mean"], range(len(part)), xerr=[low, high], fmt="o", capsize=4)
    ax.set_yticks(range(len(part)), part["method"])
    ax.set_xlabel("PSNR (dB), mean and 95% interval")
    ax.grid(alpha=0.3, axis="x")
    ax.set_title(f"{task}: nominal task", fontsize=11)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def degradation_png(part: pd.DataFrame, task: str, probe: str) -> bytes:
    """PSNR and SSIM against the probe level, one line per method (PNG bytes)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), dpi=100, layout="constrained")
    axes = fig.subplots(1, 2)
    for method, m in part.sort_values("level").groupby("method", sort=True):
        for ax, metric in zip(axes, ("psnr", "ssim")):
            ax.errorbar(m["level"], m[f"{metric}_mean"], yerr=m[f"{metric}_std"], marker="o", capsize=3, label=method)
    for ax, name in zip(axes, ("PSNR (dB)", "SSIM")):
        ax.set_xlabel(f"{probe} level (0 = nominal)")
        ax.set_ylabel(name)
        ax.set_xticks(sorted(part["level"].unique()))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{task}: degradation under probe {probe}", fontsize=11)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def plot_pngs(board: pd.DataFrame, sources: list[Path] = ()) -> dict[str, bytes]:
    """Every plot of the report, rendered once: `<task>__intervals` (each method's nominal mean PSNR with
    its 95% interval), `<task>__<probe>` (degradation curves of each probe with perturbed levels) and
    `<task>__convergence` (the solvers' PSNR-vs-iteration traces in the sweep folders `sources`)."""
    plots = {
        f"{task}__convergence": convergence.convergence_png(task, traces)
        for task, traces in convergence.load_traces(list(sources)).items()
    }
    if "psnr_ci_low" in board:
        for task, part in nominal_cells(board).groupby("task", sort=True):
            plots[f"{task}__intervals"] = intervals_png(part, task)
    for (task, probe), part in board.groupby(["task", "probe"], sort=True):
        if part["level"].nunique() > 1:
            plots[f"{task}__{probe}"] = degradation_png(part, task, probe)
    return plots


def write_plots(
    board: pd.DataFrame, folder: Path, sources: list[Path] = (), plots: dict[str, bytes] | None = None
) -> list[Path]:
    """The report's plots as PNGs: `folder/plots/<task>__<probe>.png` and `<task>__convergence.png` (see plot_pngs;
    `plots`: already rendered ones)."""
    written = []
    for name, png in (plot_pngs(board, sources) if plots is None else plots).items():
        path = Path(folder) / "plots" / f"{name}.png"
        atomic_write(path, lambda p, png=png: p.write_bytes(png))
        written.append(path)
    return written
