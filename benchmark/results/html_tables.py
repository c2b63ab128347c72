"""The report's HTML tables: sortable leaderboards, statistics, method x training, probes.

Each cell is (text, sort value[, class]); the page's script sorts a column by its values.
"""

from __future__ import annotations

import base64
import html
import math

import pandas as pd

from regbench.results import leaderboard, statistics


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def is_nan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt(v, digits: int = 2) -> str:
    return "" if is_nan(v) else f"{v:.{digits}f}"


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# -- tables --------------------------------------------------------------------
def table(columns: list[str], rows: list[list[tuple[str, object]]], caption: str = "") -> str:
    """A sortable table; each cell is (shown text, sort value or None for text cells)."""
    textual = [all(len(row) > i and row[i][1] is None for row in rows) for i in range(len(columns))]
    head = "".join(f"<th{' class=text' if i == 0 or textual[i] else ''}>{esc(c)}</th>" for i, c in enumerate(columns))
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text, value, *klass = cell
            attrs = "" if value is None else f' data-v="{"" if is_nan(value) else esc(value)}"'
            classes = " ".join(k for k in ["text" if value is None else "", *klass] if k)
            if classes:
                attrs += f' class="{classes}"'
            cells.append(f"<td{attrs}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption class=muted>{esc(caption)}</caption>" if caption else ""
    return f"<table class=sortable>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def overall_table(overall: pd.DataFrame) -> str:
    best = overall["psnr_mean"].max()
    rows = []
    for r in overall.itertuples():
        gap_class = "" if is_nan(r.gap_db) else ("neg" if r.gap_db < 0 else "pos")
        rank = int(r.rank)
        rows.append(
            [
                (esc(r.method), None),
                (str(rank), rank),
                (f"{r.psnr_mean:.2f} ± {r.psnr_std:.2f}", r.psnr_mean, "best" if r.psnr_mean == best else ""),
                (leaderboard.interval(r.psnr_ci_low, r.psnr_ci_high), r.psnr_ci_low),
                ("–" if is_nan(r.p_next) else f"{r.p_next:.3f}", r.p_next),
                (f"{r.ssim_mean:.4f} ± {r.ssim_std:.4f}", r.ssim_mean),
                (fmt(r.seconds_mean), r.seconds_mean),
                (f"{r.iterations_mean:.0f}", r.iterations_mean),
                (f"{100 * r.converged_frac:.0f}%", r.converged_frac),
                (f"{int(r.params)}", int(r.params)),
                (f"{r.train_minutes:.1f}", r.train_minutes),
                (str(int(r.n_images)), int(r.n_images)),
                (esc(r.weights if isinstance(getattr(r, "weights", None), str) else "–"), None),
                (fmt(r.reference_psnr), r.reference_psnr),
                (("+" if not is_nan(r.gap_db) and r.gap_db > 0 else "") + fmt(r.gap_db), r.gap_db, gap_class),
            ]
        )
    columns = [
        "method",
        "rank",
        "PSNR (dB)",
        "95% CI",
        "p vs next",
        "SSIM",
        "s/image",
        "iterations",
        "converged",
        "params",
        "train min",
        "images",
        "weights",
        "published PSNR",
        "gap (dB)",
    ]
    return table(
        columns,
        rows,
        "nominal task; click a header to sort; rank: shared with the method above when the paired test "
        "(Wilcoxon, per-image PSNR) finds no difference at 5%; 95% CI: bootstrap over images; "
        "gap = regbench minus published",
    )


def statistics_html(board: pd.DataFrame) -> str:
    """Mean ranks over the task's cells and the probes' rank stability (Kendall's tau vs level 0)."""
    parts = []
    ranks = statistics.mean_ranks(board)
    if len(ranks) > 1:
        rows = [
            [(esc(r.method), None), (f"{r.mean_rank:.2f}", r.mean_rank), (str(r.cells), r.cells)]
            for r in ranks.itertuples()
        ]
        parts.append(table(["method", "mean rank", "cells"], rows, "tie-aware rank, averaged over probes and levels"))
    stability = statistics.rank_stability(board)
    if not stability.empty:
        rows = [
            [
                (esc(r.probe), None),
                (str(r.level), r.level),
                (fmt(r.kendall_tau), r.kendall_tau),
                (str(r.methods), r.methods),
            ]
            for r in stability.itertuples()
        ]
        parts.append(
            table(
                ["probe", "level", "Kendall tau", "methods"],
                rows,
                "rank stability: Kendall's tau between a probe's ranking at level 0 and at each level",
            )
        )
    return "".join(parts)


def training_html(crossed: pd.DataFrame) -> str:
    """The method x training table: PSNR per architecture and scheme, each line's best marked."""
    schemes = [c for c in crossed.columns if c not in ("task", "method")]
    rows = []
    for r in crossed.to_dict("records"):
        best = max((r[s] for s in schemes if not is_nan(r[s])), default=None)
        rows.append(
            [(esc(r["method"]), None)] + [(fmt(r[s]) or "–", r[s], "best" if r[s] == best else "") for s in schemes]
        )
    return table(["method", *schemes], rows, "PSNR (dB) on the nominal task; –: the pair was not run")


def probe_html(part: pd.DataFrame, probe: str) -> str:
    wide = leaderboard.probe_table(part, probe)
    columns = [c for c in wide.columns if c not in ("task",)]
    rows = []
    for r in wide.to_dict("records"):
        row = [(esc(r["method"]), None)]
        for c in columns[1:]:
            row.append((fmt(r[c], 2 if c.startswith("psnr") else 4), r[c]))
        rows.append(row)
    names = ["method"] + [c.replace("psnr@", "PSNR @ level ").replace("ssim@", "SSIM @ level ") for c in columns[1:]]
    return table(names, rows)
