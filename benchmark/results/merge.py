"""Merge the results of several sweeps (`make leaderboard RESULTS="dir1 dir2"`).

A row is identified by its combination's config hash (method, task, probe,
profile, seed), its image and its probe level: the same row found in several
folders is kept once, from the first folder that has it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from regbench.results import leaderboard
from regbench.results.store import ResultStore, atomic_write, atomic_write_text

KEY = ["config_hash", "image_id", "level", "seed"]


def load(folder: str | Path) -> pd.DataFrame:
    """The rows of one sweep folder: its results.parquet, else its rows/ (a sweep still running)."""
    folder = Path(folder)
    if (folder / "results.parquet").is_file():
        return pd.read_parquet(folder / "results.parquet")
    if (folder / "rows").is_dir():
        return ResultStore(folder).load()
    raise FileNotFoundError(f"{folder} holds no results.parquet and no rows/; give the OUT folder of a sweep")


def merge(folders: list[str | Path]) -> pd.DataFrame:
    """The union of the folders' rows without duplicates (first folder wins)."""
    if not folders:
        raise ValueError("no result folders given; usage: make leaderboard RESULTS=\"runs/cpu runs/other\"")
    parts = [load(f) for f in folders]
    parts = [p for p in parts if not p.empty]
    if not parts:
        return load(folders[0])
    rows = pd.concat(parts, ignore_index=True)
    key = KEY + (["sample_seed"] if "sample_seed" in rows else [])  # samplers: one row per seed of an image
    if "sample_seed" in rows:
        rows["sample_seed"] = rows["sample_seed"].fillna(0).astype(int)  # rows from before samplers existed
    return rows.drop_duplicates(key, keep="first", ignore_index=True)


def write(rows: pd.DataFrame, out: str | Path) -> pd.DataFrame:
    """results.parquet, leaderboard.csv and leaderboard.md of merged rows into `out` (never a sweep folder)."""
    out = Path(out)
    if (out / "rows").is_dir():
        raise FileExistsError(
            f"{out} is a sweep folder (it has rows/) and would rebuild its own results; "
            "merge into another folder (make leaderboard OUT=...)"
        )
    atomic_write(out / "results.parquet", lambda p: rows.to_parquet(p, index=False))
    board = leaderboard.aggregate(rows)
    atomic_write(out / "leaderboard.csv", lambda p: board.to_csv(p, index=False))
    atomic_write_text(out / "leaderboard.md", leaderboard.to_markdown(board))
    return board
