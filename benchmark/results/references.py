"""Published reference values (results/references.yaml of the repository and of plugin roots).

They live outside the method YAMLs on purpose: a method config is hashed into
every combination key, and a citation must not invalidate finished results.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from regbench.core.plugins import plugin_roots

COLUMNS = ["method", "task", "psnr", "source"]


def load(paths: list[Path] | None = None) -> pd.DataFrame:
    """One line per (method, task); a later file (a plugin root) overrides an earlier one."""
    paths = paths if paths is not None else [r / "results" / "references.yaml" for r in plugin_roots()]
    entries = []
    for path in paths:
        if Path(path).is_file():
            for entry in yaml.safe_load(Path(path).read_text()) or []:
                missing = set(COLUMNS) - set(entry)
                if missing:
                    raise ValueError(f"{path}: reference entry {entry} lacks {sorted(missing)}")
                entries.append({k: entry[k] for k in COLUMNS})
    refs = pd.DataFrame(entries, columns=COLUMNS)
    return refs.drop_duplicates(["method", "task"], keep="last", ignore_index=True)


def with_references(board: pd.DataFrame, refs: pd.DataFrame | None = None) -> pd.DataFrame:
    """`board` (with task, method, psnr_mean) plus `reference_psnr` and `gap_db` (ours minus published)."""
    refs = load() if refs is None else refs
    merged = board.merge(
        refs.rename(columns={"psnr": "reference_psnr", "source": "reference_source"}), on=["task", "method"], how="left"
    )
    merged["gap_db"] = merged["psnr_mean"] - merged["reference_psnr"]
    return merged
