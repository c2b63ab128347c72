"""What each released checkpoint's training budget bought: its training quantity against training
minutes, from the histories the checkpoints' manifest entries keep (no retraining, no evaluation).

    python scripts/training_curves.py [results/weights] [--out curves.png]

`regbench release` writes the table and the plot into results/training_curves/.

Prints a table of each checkpoint's training quantity, as a moving average (window: a tenth of the
history), at 25/50/75/100% of its training minutes, and writes the curves as a PNG, one panel per
quantity. The quantity is what the scheme optimizes: the PSNR of training batches for the denoising
losses (ridge methods and DEAL: sigma=25; denoisers: their mix of noise levels, the same mix at every
step), the critic's gap between noisy and clean patches for the adversarial schemes, the patches'
negative log-likelihood for the patch priors, the method's own loss for a method fitted its own way
that logs nothing else (NETT). None is on test images: a curve says where a budget
stops paying, not what BSD68 scores.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from regbench.training.loop import psnr_of_mse

FRACTIONS = (0.25, 0.5, 0.75, 1.0)


QUANTITIES = {  # history key -> label, first match wins
    "psnr": "training-batch PSNR (dB)",
    "gap": "critic gap, noisy - clean",
    "nll": "patch NLL (nats)",
    "loss": "training-batch PSNR (dB)",  # bilevel training logs only the batch MSE
}
OWN_FIT = "method_fit"  # a method's own training: its "loss" is whatever that training minimizes
OWN_FIT_LABEL = "the method's own fitting loss"


def quantity(entry: dict) -> tuple[str, pd.Series]:
    """The label and values of the quantity one manifest entry's training history tracks."""
    history = entry.get("log", {}).get("history", {})
    for key, label in QUANTITIES.items():
        if key in history:
            if key == "loss" and entry.get("training") == OWN_FIT:  # the method's own loss (NETT's), not an MSE
                return OWN_FIT_LABEL, pd.Series(history[key], dtype=float)
            values = [psnr_of_mse(v) for v in history[key]] if key == "loss" else history[key]
            return label, pd.Series(values, dtype=float)
    raise ValueError(f"{entry.get('file', '?')}: its training history has none of {', '.join(QUANTITIES)}")


def curve(entry: dict) -> pd.DataFrame:
    """(minutes, value) of one manifest entry's training history, smoothed by a moving average."""
    label, values = quantity(entry)
    window = max(1, len(values) // 10)
    minutes = pd.Series(range(1, len(values) + 1), dtype=float) * float(entry["train_minutes"]) / len(values)
    return pd.DataFrame({"minutes": minutes, "value": values.rolling(window, min_periods=1).mean(), "quantity": label})


def name(entry: dict) -> str:
    return f"{entry['method']} ({entry['training']})" if entry.get("training") else entry["method"]


def table(manifest: dict) -> pd.DataFrame:
    rows = []
    for entry in manifest.values():
        c = curve(entry)
        row = {
            "weights": name(entry),
            "quantity": c.quantity.iloc[0],
            "train_minutes": round(float(entry["train_minutes"]), 1),
        }
        for f in FRACTIONS:
            row[f"@{int(f * 100)}%"] = round(float(c.value.iloc[max(0, math.ceil(f * len(c)) - 1)]), 2)
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["quantity", "weights"]).reset_index(drop=True)


def plot(manifest: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {name(e): curve(e) for e in sorted(manifest.values(), key=name)}
    labels = sorted({c.quantity.iloc[0] for c in curves.values()})
    fig, axes = plt.subplots(1, len(labels), figsize=(7 * len(labels), 4), squeeze=False)
    for ax, label in zip(axes[0], labels):
        for weights, c in curves.items():
            if c.quantity.iloc[0] == label:
                ax.plot(c.minutes, c.value, label=weights)
        ax.set_xlabel("training minutes (cpu profile)")
        ax.set_ylabel(f"{label}, moving average")
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
