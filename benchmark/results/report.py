"""report.html: the leaderboard as one self-contained file (no network, no CDN).

    regbench report OUT                      # OUT/report.html from one sweep
    regbench report DIR1 DIR2 --out MERGED   # merge sweeps: results, leaderboards, report

Sections: provenance (per sweep folder: profiles, devices, git revisions, when
the results were finished, wall time of the combinations, evaluation and
training time); per task a sortable leaderboard on the nominal task with the
published reference and the gap to it, a sortable table per probe (PSNR/SSIM per
level) with its degradation curve (also written as OUT/plots/<task>__<probe>.png), the solvers' PSNR-vs-iteration
traces (OUT/plots/<task>__convergence.png), and reconstruction grids (ground truth,
initializer, each method; PSNR in the captions); the published references.
CSS and JS are inline, plots (matplotlib) and images are base64 data URIs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import pandas as pd

from regbench.evaluation.examples import label_of, load_examples
from regbench.results import leaderboard, merge, references
from regbench.results.html_tables import (
    data_uri,
    esc,
    fmt,
    overall_table,
    probe_html,
    statistics_html,
    table,
    training_html,
)
from regbench.results.plots import plot_pngs, write_plots
from regbench.results.store import atomic_write_text

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1400px;
padding:16px 24px;color:#1d2430;background:#fff}
h1{margin:.2em 0}h2{margin-top:2em;border-bottom:2px solid #2b6cb0;padding-bottom:.2em}h3{margin-top:1.6em}
nav a{margin-right:1em}.muted{color:#5a6578}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-variant-numeric:tabular-nums}
th,td{padding:4px 10px;border-bottom:1px solid #dde3ea;text-align:right;white-space:nowrap}
th:first-child,td:first-child,td.text,th.text{text-align:left}td.text{white-space:normal}
caption{text-align:left;padding:2px 0}
thead th{background:#edf2f7;position:sticky;top:0}
table.sortable th{cursor:pointer;user-select:none}table.sortable th:hover{background:#d5e3f3}
th[data-sort=asc]::after{content:' \\25B2'}th[data-sort=desc]::after{content:' \\25BC'}
tbody tr:nth-child(even){background:#f7fafc}td.best{font-weight:700;color:#22543d}
.neg{color:#9b2c2c}.pos{color:#22543d}
.grid{display:grid;gap:8px;margin:.5em 0 1.5em;cursor:zoom-in}.grid.big{cursor:zoom-out}
figure{margin:0}figure img{width:100%;display:block;border:1px solid #cbd5e0}
img.px{image-rendering:pixelated}figcaption{font-size:12px;text-align:center;color:#2d3748}
.plot{max-width:900px;width:100%}
"""

JS = """
function cellKey(td){const v=td.dataset.v!==undefined?td.dataset.v:td.textContent.trim();
  if(v===''||v==='nan')return null;const n=Number(v);return isNaN(n)?v.toLowerCase():n;}
function sortTable(th){const table=th.closest('table');const col=Array.from(th.parentNode.children).indexOf(th);
  const asc=th.dataset.sort!=='asc';table.querySelectorAll('thead th').forEach(h=>delete h.dataset.sort);
  th.dataset.sort=asc?'asc':'desc';const body=table.tBodies[0];const rows=Array.from(body.rows);
  rows.sort((a,b)=>{const x=cellKey(a.cells[col]),y=cellKey(b.cells[col]);
    if(x===null||y===null)return (x===null)-(y===null);
    const c=(typeof x===typeof y)?(x<y?-1:x>y?1:0):(typeof x==='number'?-1:1);return asc?c:-c;});
  rows.forEach(r=>body.appendChild(r));}
document.querySelectorAll('table.sortable thead th').forEach(th=>th.addEventListener('click',()=>sortTable(th)));
document.querySelectorAll('.grid').forEach(g=>g.addEventListener('click',()=>{g.classList.toggle('big');
  g.style.gridTemplateColumns=g.classList.contains('big')?g.dataset.big:g.dataset.small;}));
document.documentElement.dataset.sortable='ready';
"""


def plot_img(png: bytes, alt: str) -> str:
    return f'<img class=plot alt="{esc(alt)}" src="{data_uri(png)}">'


# -- reconstruction grids --------------------------------------------------------
def collect_examples(folders: list[Path], rows: pd.DataFrame) -> dict:
    """{(task, probe, level): {image_id: {"truth": (folder, file), "init": ..., "methods": {method: example}}}}."""
    kept = set(rows["config_hash"].unique())
    grids: dict = {}
    seen = set()
    for folder in folders:
        for index in load_examples(folder):
            label = label_of(index["method"], index["task"], index["probe"])
            if index.get("config_hash") not in kept or label in seen:
                continue
            seen.add(label)
            for e in index["examples"]:
                cell = grids.setdefault((index["task"], index["probe"], e["level"]), {}).setdefault(
                    e["image_id"], {"methods": {}}
                )
                cell.setdefault("truth", (index["folder"], e["files"]["truth"]))
                cell.setdefault("init", (index["folder"], e["files"]["init"], e["init_psnr"]))
                cell["methods"][index["method"]] = (index["folder"], e["files"]["recon"], e["psnr"], e["ssim"])
    return grids


def figure(folder: Path, file: str, caption: str, crop: int | None = None) -> str:
    """One image of a grid, inlined; `crop`: only its central crop x crop pixels, re-encoded losslessly (a
    released report's size)."""
    path = Path(folder) / file
    if not path.is_file():
        return f"<figure><figcaption>{caption}<br>(image missing)</figcaption></figure>"
    import io

    from PIL import Image

    png = path.read_bytes()
    with Image.open(io.BytesIO(png)) as im:
        w, h = im.size
        if crop is not None and max(w, h) > crop:
            left, top = max(0, (w - crop) // 2), max(0, (h - crop) // 2)
            shown = im.crop((left, top, min(w, left + crop), min(h, top + crop)))
            buffer = io.BytesIO()
            shown.save(buffer, format="PNG", optimize=True)
            png, (w, h) = buffer.getvalue(), shown.size
    return (
        f'<figure><img{" class=px" if max(w, h) < 200 else ""} alt="{esc(file)}" src="{data_uri(png)}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def grid_html(images: dict, order: list[str], crop: int | None = None) -> str:
    parts = []
    for image_id, cell in images.items():
        methods = [m for m in order if m in cell["methods"]] + sorted(set(cell["methods"]) - set(order))
        best = max((cell["methods"][m][2] for m in methods), default=float("nan"))
        figs = [
            figure(cell["truth"][0], cell["truth"][1], f"ground truth<br>{esc(image_id)}", crop),
            figure(cell["init"][0], cell["init"][1], f"initializer<br>{fmt(cell['init'][2])} dB", crop),
        ]
        for m in methods:
            folder, file, psnr, ssim = cell["methods"][m]
            mark = "<b>" if psnr == best else ""
            figs.append(
                figure(
                    folder, file, f"{esc(m)}<br>{mark}{fmt(psnr)} dB{'</b>' if mark else ''}, SSIM {fmt(ssim, 3)}", crop
                )
            )
        small, big = f"repeat({len(figs)},minmax(90px,220px))", f"repeat({len(figs)},minmax(0,1fr))"
        parts.append(
            f'<div class=grid title="click to enlarge" data-small="{small}" data-big="{big}" '
            f'style="grid-template-columns:{small}">{"".join(figs)}</div>'
        )
    return "".join(parts)


# -- provenance -------------------------------------------------------------------
def wall_seconds(folder: Path, rows: pd.DataFrame) -> float:
    """Sum over the folder's combinations of (rows file written) - (resolved config written at its start)."""
    total = 0.0
    combos = rows[["method", "task", "probe", "config_hash"]].drop_duplicates()
    for r in combos.itertuples():
        start = folder / "configs" / f"{label_of(r.method, r.task, r.probe)}.yaml"
        end = folder / "rows" / f"{r.config_hash}.parquet"
        if start.is_file() and end.is_file():
            total += max(0.0, end.stat().st_mtime - start.stat().st_mtime)
    return total


def finished_at(folder: Path) -> str:
    files = list((folder / "rows").glob("*.parquet")) or [folder / "results.parquet"]
    times = [f.stat().st_mtime for f in files if f.is_file()]
    if not times:
        return "?"
    return dt.datetime.fromtimestamp(max(times), dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}h {seconds % 3600 // 60:02d}m {seconds % 60:02d}s"
        if seconds >= 3600
        else f"{seconds // 60}m {seconds % 60:02d}s"
    )


def provenance_html(folders: list[Path], rows: pd.DataFrame) -> str:
    out_rows, totals = [], [0.0, 0.0, 0.0]
    for folder in folders:
        mine = merge.load(folder)
        mine = mine[mine["config_hash"].isin(rows["config_hash"])]
        if mine.empty:
            continue
        wall = wall_seconds(folder, mine)
        evals = float(mine["seconds"].sum())
        train = float(mine.drop_duplicates("checkpoint")["train_minutes"].sum()) if "checkpoint" in mine else 0.0
        totals = [totals[0] + wall, totals[1] + evals, totals[2] + train]
        join = lambda col: ", ".join(sorted(map(str, mine[col].unique())))  # noqa: E731
        out_rows.append(
            [
                (esc(folder), None),
                (esc(join("profile")), None),
                (esc(join("device")), None),
                (esc(join("git_rev")), None),
                (finished_at(folder), None),
                (str(mine["config_hash"].nunique()), mine["config_hash"].nunique()),
                (duration(wall), wall),
                (duration(evals), evals),
                (f"{train:.1f}", train),
            ]
        )
    if len(out_rows) > 1:
        out_rows.append(
            [("<b>total</b>", None)]
            + [("", None)] * 5
            + [(duration(totals[0]), totals[0]), (duration(totals[1]), totals[1]), (f"{totals[2]:.1f}", totals[2])]
        )
    columns = [
        "sweep folder",
        "profile",
        "device",
        "git revision",
        "finished",
        "combinations",
        "wall time",
        "evaluation time",
        "training min",
    ]
    caption = (
        "wall time: from each combination's start (its resolved config) to its stored rows, summed; "
        "evaluation: reconstruction seconds summed over images; training: minutes of the checkpoints used, "
        "as recorded when they were trained (released checkpoints were trained earlier)"
    )
    return table(columns, out_rows, caption)


def references_html(rows: pd.DataFrame) -> str:
    refs = references.load()
    if refs.empty:
        return "<p class=muted>No published references (results/references.yaml).</p>"
    ours = (
        leaderboard.nominal(rows)[["task", "method", "psnr_mean"]]
        if not rows.empty
        else pd.DataFrame(columns=["task", "method", "psnr_mean"])
    )
    merged = refs.merge(ours, on=["task", "method"], how="left")
    body = [
        [
            (esc(r.method), None),
            (esc(r.task), None),
            (fmt(r.psnr), r.psnr),
            (fmt(r.psnr_mean) or "not run", r.psnr_mean),
            (fmt(r.psnr_mean - r.psnr), r.psnr_mean - r.psnr),
            (esc(r.source), None),
        ]
        for r in merged.itertuples()
    ]
    return table(["method", "task", "published PSNR", "regbench PSNR", "gap (dB)", "source"], body)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def nominal_first(probe: str) -> tuple:
    return (probe != "nominal", probe)


# -- the page ------------------------------------------------------------------
def render(
    folders: list[Path],
    rows: pd.DataFrame,
    plots: dict[str, bytes] | None = None,
    board: pd.DataFrame | None = None,
    example_crop: int | None = None,
) -> str:
    """The page; `plots`, `board`: plot_pngs' and leaderboard.aggregate's output when the caller has them;
    `example_crop`: reconstructions shown as their central crop of that size (PSNR/SSIM stay whole-image)."""
    folders = [Path(f) for f in folders]
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    board = leaderboard.aggregate(rows) if board is None else board
    plots = plot_pngs(board, folders) if plots is None else plots
    grids = collect_examples(folders, rows) if not rows.empty else {}
    tasks = sorted(rows["task"].unique()) if not rows.empty else []
    n_methods = rows["method"].nunique() if not rows.empty else 0
    body = [
        f"<h1>regbench report</h1><p class=muted>generated {generated}; {plural(len(rows), 'result row')}, "
        f"{plural(n_methods, 'method')}, {plural(len(tasks), 'task')}. "
        "Self-contained: open it anywhere, no network needed.</p>",
        "<nav>"
        + "".join(f'<a href="#task-{esc(t)}">{esc(t)}</a>' for t in tasks)
        + '<a href="#references">published references</a><a href="#provenance">provenance</a></nav>',
    ]
    if rows.empty:
        body.append("<p>No finished combinations yet.</p>")
    for task in tasks:
        task_rows = rows[rows["task"] == task]
        overall = references.with_references(leaderboard.nominal(task_rows))
        order = list(overall["method"])
        body.append(f'<h2 id="task-{esc(task)}">{esc(task)}</h2><h3>Leaderboard</h3>{overall_table(overall)}')
        if f"{task}__intervals" in plots:
            body.append(plot_img(plots[f"{task}__intervals"], f"mean PSNR with 95% intervals {task}"))
        part = board[board["task"] == task]
        crossed = leaderboard.training_table(part)
        if not crossed.empty:
            body.append(f"<h3>Method x training</h3>{training_html(crossed)}")
        for probe in sorted(part["probe"].unique(), key=nominal_first):
            probe_part = part[part["probe"] == probe]
            levels = sorted(probe_part["level"].unique())
            body.append(
                f"<h3>Probe {esc(probe)} ({'levels' if len(levels) > 1 else 'level'} "
                f"{', '.join(map(str, levels))})</h3>{probe_html(probe_part, probe)}"
            )
            if f"{task}__{probe}" in plots:
                body.append(plot_img(plots[f"{task}__{probe}"], f"degradation curves {task} {probe}"))
        sureness = statistics_html(part)
        if sureness:
            body.append(f"<h3>How stable the ranking is</h3>{sureness}")
        if f"{task}__convergence" in plots:
            body.append(
                "<h3>Convergence</h3><p class=muted>PSNR against iteration of the energy-based solvers "
                "(level 0, the first images of a sweep)</p>"
                + plot_img(plots[f"{task}__convergence"], f"convergence {task}")
            )
        shown = sorted((k for k in grids if k[0] == task), key=lambda k: (nominal_first(k[1]), k[2]))
        if shown:
            region = "the whole image" if example_crop is None else f"its central {example_crop}x{example_crop} crop"
            body.append(
                f"<h3>Reconstructions</h3><p class=muted>ground truth, initializer, then each method "
                f"(best first), each as {region}; PSNR/SSIM of the whole image in the captions</p>"
            )
        for key in shown:
            grid = grid_html(grids[key], order, example_crop)
            body.append(f"<h4>probe {esc(key[1])}, level {esc(key[2])}</h4>{grid}")
    if not tasks or not any(k[0] in tasks for k in grids):
        body.append(
            "<p class=muted>No example reconstructions kept (examples=0, or results from before they existed).</p>"
        )
    body.append(f'<h2 id="references">Published references</h2>{references_html(rows)}')
    body.append(f'<h2 id="provenance">Provenance</h2>{provenance_html(folders, rows) if not rows.empty else ""}')
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'><title>regbench report</title>"
        f"<style>{CSS}</style></head><body>{''.join(body)}<script>{JS}</script></body></html>"
    )


def write_report(
    folders: list[str | Path],
    out_html: str | Path,
    rows: pd.DataFrame | None = None,
    board: pd.DataFrame | None = None,
    example_crop: int | None = None,
) -> Path:
    """report.html of the folders' rows (or `rows`, with their `board` when the caller aggregated them);
    `example_crop`: see render."""
    folders = [Path(f) for f in folders]
    rows = merge.merge(folders) if rows is None else rows
    out_html = Path(out_html)
    board = leaderboard.aggregate(rows) if board is None else board
    plots = plot_pngs(board, folders)  # rendered once: inline in the page and as PNG files
    atomic_write_text(out_html, render(folders, rows, plots, board, example_crop))
    if not rows.empty:
        write_plots(board, out_html.parent, plots=plots)
    return out_html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="regbench report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="OUT folders of sweeps")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="merge the folders into this folder (results.parquet, leaderboard.md/.csv, report.html)",
    )
    args = parser.parse_args(argv)
    folders = [f.resolve() for f in args.folders]
    try:
        if args.out is None:
            if len(folders) > 1:
                parser.error("several folders: give --out FOLDER for the merged leaderboard")
            path = write_report(folders, folders[0] / "report.html")
        else:
            out = args.out.resolve()
            if out in folders and len(folders) > 1:
                parser.error(f"--out {out} is one of the merged sweep folders; choose another folder")
            rows = merge.merge(folders)
            if out not in folders:
                merge.write(rows, out)
            path = write_report(folders, out / "report.html", rows)
            print(f"leaderboard: {out / 'leaderboard.md'} ({len(rows)} rows from {len(folders)} folders)")
    except (OSError, ValueError) as err:
        print(f"regbench: error: {err}", file=sys.stderr)
        return 2
    print(f"report: {path}")
    return 0
