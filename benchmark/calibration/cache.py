"""Calibrated hyperparameters: cached per run, released beside the checkpoints.

A calibration depends on the weights, the task's problem (operator, noise, calibration images and
noise draws, not its test split: `calibration_problem`), the solver and the search settings
(`calibration_key`). The runner looks a key up in the cache, then
among the released calibrations (results/weights/CALIBRATIONS.json), and runs the search
only when neither has it. So a fresh clone's `make benchmark` evaluates the released
weights with the hyperparameters regbench found for them, instead of repeating a search
of minutes per method; `retrain=true` (or a changed config, which changes the key)
calibrates again. Released entries are copied from a cache that a run filled
(`regbench release-calibrations`, and `make train-release` for its own).

Every hyperparameter is calibrated; the search starts from the method's current values,
which for a trained method are those its checkpoint carries (`Method.get_extra_state`: what
training left, e.g. CRR's learned lambda and mu), so they are part of the key.

The key does not cover the search code itself (benchmark/calibration/search.py): after changing
the search, clear the cache's `calibration/` folder and re-release.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from regbench.core.hashing import config_hash, portable
from regbench.core.provenance import git_rev
from regbench.core.spec import Folders, Run
from regbench.results.store import atomic_write_text

log = logging.getLogger(__name__)
RELEASED = "CALIBRATIONS.json"


def calibration_key(run: Run, default_hp: dict, weights_key: str) -> str:
    """What a calibration depends on. `default_hp`: the method's hyperparameters before the
    search; the method's per-profile reconstruction settings (sampler steps) count when it has any."""
    profile, options = run.profile, run.method.options
    return config_hash(
        weights_key,
        calibration_problem(run.task.config),
        profile.n_calib,
        profile.calib_crop,
        portable(profile.config.solver),
        portable(profile.config.calibrate),
        run.seed,
        default_hp,
        *([options] if options else []),
    )


def calibration_problem(task: DictConfig) -> dict:
    """What of a task a calibration depends on: its class, operator, noise, calibration split and noise
    stream; not its name, test split or training split (a task that poses the same problem on other test
    images, e.g. denoise_folder, shares the calibration)."""
    spec = portable(task.spec)
    stream = spec.get("stream") or spec.get("name")
    return {**{k: v for k, v in spec.items() if k not in ("name", "test", "train", "stream")}, "stream": stream}


def cache_path(folders: Folders, name: str, key: str) -> Path:
    return folders.cache / "calibration" / f"{name}-{key}.json"


def released_path(folders: Folders) -> Path:
    return folders.weights / RELEASED


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        log.warning("calibration file %s is corrupt; ignoring it", path)
        return None


def lookup(folders: Folders, name: str, key: str) -> tuple[dict, str] | None:
    """(record with `hp`, `psnr`, `seconds`; where it came from), or None: calibrate."""
    path = cache_path(folders, name, key)
    cached = _read(path)
    if cached is not None and "hp" in cached and "psnr" in cached:
        return cached, f"cache {path}"
    released = (_read(released_path(folders)) or {}).get(f"{name}-{key}")
    if released is not None:
        return released, f"released {RELEASED}"
    return None


def save(folders: Folders, name: str, key: str, hp: dict, psnr: float, seconds: float) -> None:
    atomic_write_text(cache_path(folders, name, key), json.dumps({"hp": hp, "psnr": psnr, "seconds": seconds}))


def release(run: Run, name: str, key: str, overrides: list[str]) -> dict:
    """Copy the cached calibration for `key` into the released file, with what it was for
    (`overrides`: the command line that composes its config, so a test can check it is current)."""
    cached = _read(cache_path(run.folders, name, key))
    if cached is None:
        raise FileNotFoundError(
            f"{name}: no cached calibration {cache_path(run.folders, name, key)}; run the combination first"
        )
    record = {
        **cached,
        "method": name,
        "task": run.task.name,
        "profile": run.profile.name,
        "images": run.profile.n_calib,
        "crop": run.profile.calib_crop,
        "overrides": list(overrides),
        "git_rev": git_rev(),
        "released": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    path = released_path(run.folders)
    entries = {  # a calibration released for the same command line under another key is superseded
        k: v for k, v in (_read(path) or {}).items() if v.get("overrides") != record["overrides"]
    }
    entries[f"{name}-{key}"] = record
    atomic_write_text(path, json.dumps(dict(sorted(entries.items())), indent=1, sort_keys=True) + "\n")
    return record
