"""The result store of a sweep: one parquet of rows per finished combination.

Everything is written to a temporary file in the same folder and renamed into
place, so a killed run leaves either the previous file or the new one, never a
half-written file that reads as valid. `results.parquet` and the leaderboards
are rebuilt from the per-combination files after every combination.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd
import pyarrow.parquet as pq

from regbench.core.locks import file_lock
from regbench.results import leaderboard

_UMASK = os.umask(0)
os.umask(_UMASK)

REQUIRED_COLUMNS = (
    "method",
    "task",
    "probe",
    "level",
    "image_id",
    "seed",
    "psnr",
    "ssim",
    "seconds",
    "iterations",
    "converged",
    "params",
    "config_hash",
    "git_rev",
    "device",
    "profile",
)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except OSError as err:  # full disk, quota, permissions: say which file, keep nothing half-written
        Path(tmp).unlink(missing_ok=True)
        raise OSError(
            err.errno,
            f"could not write {path}: {err.strerror or err}; nothing was left half-written "
            "(free space or choose another out=... / cache_dir=...)",
        ) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


class ResultStore:
    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.rows_dir = self.out / "rows"

    def check_writable(self) -> None:
        """Fail before any work when OUT cannot hold results (one line: where and why)."""
        try:
            atomic_write_text(self.out / ".write-test", "ok")
            (self.out / ".write-test").unlink()
        except OSError as err:
            raise OSError(
                f"out={self.out} is not writable ({err.strerror or err}); choose another out=... (make: OUT=...)"
            ) from None

    def rows_path(self, combo: str) -> Path:
        return self.rows_dir / f"{combo}.parquet"

    def has(self, combo: str) -> bool:
        path = self.rows_path(combo)
        if not path.exists():
            return False
        try:
            return pq.read_metadata(path).num_rows > 0
        except Exception:
            return False

    def write_rows(self, combo: str, rows: list[dict]) -> None:
        df = pd.DataFrame(rows)
        missing = set(REQUIRED_COLUMNS) - set(df.columns)
        if missing:
            raise ValueError(f"result rows lack columns {sorted(missing)}")
        atomic_write(self.rows_path(combo), lambda p: df.to_parquet(p, index=False))

    def load(self) -> pd.DataFrame:
        files = sorted(self.rows_dir.glob("*.parquet"))
        if not files:
            return pd.DataFrame(columns=list(REQUIRED_COLUMNS))
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)

    def refresh(self) -> pd.DataFrame:
        """Rebuild results.parquet, leaderboard.csv and leaderboard.md from all finished rows.

        Under a lock: parallel jobs (joblib, Slurm) finishing together must not
        overwrite a newer table with an older one.
        """
        with file_lock(self.out / ".refresh.lock"):
            df = self.load()
            atomic_write(self.out / "results.parquet", lambda p: df.to_parquet(p, index=False))
            board = leaderboard.aggregate(df)
            atomic_write(self.out / "leaderboard.csv", lambda p: board.to_csv(p, index=False))
            atomic_write_text(self.out / "leaderboard.md", leaderboard.to_markdown(board))
        return board
