"""Convergence evidence as a picture: the PSNR-vs-iteration traces that sweeps record for
energy-based methods (OUT/traces/<method>__<task>__<probe>.json, level-0 images), one plot
per task with every method's traces, so a reader sees where each solver stops improving."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def load_traces(folders: list[Path]) -> dict[str, dict[str, list[list[float]]]]:
    """{task: {method: [PSNR trace per image]}} at level 0; the first folder holding a
    (method, task) wins, nominal-probe traces before the others (they are the same solves)."""
    found: dict[str, dict[str, list[list[float]]]] = {}
    files = [f for folder in folders for f in sorted((Path(folder) / "traces").glob("*.json"))]
    files.sort(key=lambda f: not f.stem.endswith("__nominal"))  # stable: folder order kept within each group
    for path in files:
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            log.warning("trace file %s is unreadable; skipped", path)
            continue
        per_task = found.setdefault(record["task"], {})
        traces = [[float(v) for v in im["psnr"]] for im in record.get("images", []) if str(im.get("level")) == "0"]
        if traces and record["method"] not in per_task:
            per_task[record["method"]] = traces
    return found


def convergence_png(task: str, traces: dict[str, list[list[float]]]) -> bytes:
    """PSNR against iteration (log scale), one colour per method, one line per traced image."""
    import matplotlib
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 3.6), dpi=100, layout="constrained")
    ax = fig.subplots()
    cycle = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
    for i, (method, lines) in enumerate(sorted(traces.items())):
        colour = cycle[i % len(cycle)]
        for j, psnr in enumerate(lines):
            ax.plot(
                range(1, len(psnr) + 1),
                psnr,
                color=colour,
                alpha=1.0 if j == 0 else 0.45,
                label=f"{method} ({len(lines)} image{'s' if len(lines) > 1 else ''})" if j == 0 else None,
            )
    ax.set_xscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(f"{task}: PSNR vs iteration (level 0)", fontsize=11)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
