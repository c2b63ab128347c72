"""What each released method's training budget bought: training-batch PSNR against training minutes,
from the histories the checkpoints' manifest entries keep (no retraining, no evaluation).

    python scripts/training_curves.py [results/weights] [--out results/training-curves.png]

Prints a table of the moving-average PSNR (window: a tenth of the history) reached at 25/50/75/100% of
each checkpoint's training minutes, and writes the curves as a PNG. The PSNR is on training batches
(ridge methods and DEAL: their sigma=25 denoising loss; denoisers: their mix of noise levels, the same
mix at every step), not on test images: it says where a budget stops paying, not what BSD68 scores.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from regbench.training.loop import psnr_of_mse

FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def curve(entry: dict) -> pd.DataFrame:
    """(minutes, psnr) of one manifest entry's training history, PSNR smoothed by a moving average."""
    history = entry.get("log", {}).get("history", {})
    if "psnr" in history:
        psnr = pd.Series(history["psnr"], dtype=float)
    elif "loss" in history:  # ridge methods log the MSE of the batch's denoised patches
        psnr = pd.Series([psnr_of_mse(v) for v in history["loss"]], dtype=float)
    else:
        raise ValueError(f"{entry.get('file', '?')}: its training history has neither psnr nor loss")
    window = max(1, len(psnr) // 10)
    minutes = pd.Series(range(1, len(psnr) + 1), dtype=float) * float(entry["train_minutes"]) / len(psnr)
    return pd.DataFrame({"minutes": minutes, "psnr": psnr.rolling(window, min_periods=1).mean()})


def table(manifest: dict) -> pd.DataFrame:
    rows = []
    for entry in manifest.values():
        c = curve(entry)
        row = {"weights": entry["method"], "train_minutes": round(float(entry["train_minutes"]), 1)}
        for f in FRACTIONS:
            row[f"psnr@{int(f * 100)}%"] = round(float(c.psnr.iloc[max(0, math.ceil(f * len(c)) - 1)]), 2)
        rows.append(row)
    return pd.DataFrame(rows).sort_values("weights").reset_index(drop=True)


def plot(manifest: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for entry in sorted(manifest.values(), key=lambda e: e["method"]):
        c = curve(entry)
        ax.plot(c.minutes, c.psnr, label=entry["method"])
    ax.set_xlabel("training minutes (cpu profile)")
    ax.set_ylabel("training-batch PSNR (dB, moving average)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="?", default="results/weights")
    parser.add_argument("--out", default=None, help="PNG of the curves (default: none)")
    args = parser.parse_args(argv)
    manifest = json.loads((Path(args.weights) / "MANIFEST.json").read_text())
    print(table(manifest).to_markdown(index=False))
    if args.out:
        plot(manifest, Path(args.out))
        print(f"curves: {args.out}")


if __name__ == "__main__":
    main()
