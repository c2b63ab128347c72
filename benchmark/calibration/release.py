"""Release the calibrations a run found (cache) into results/weights/CALIBRATIONS.json, so
that a fresh clone evaluates the released weights without searching their hyperparameters again.

    regbench release-calibrations method=tv,crr,wcrr task=denoise_bsd68 [profile=cpu] [OVERRIDES...]

Each comma list is an axis (as in a Hydra multirun); every combination whose calibration is in
the cache is released, the others are listed and skipped (run them first). Overrides that change
a calibration (profile, solver, calibration settings) must be the ones the run used.
"""

from __future__ import annotations

import itertools
import logging

from regbench.calibration import cache as calibrations
from regbench.core.instantiate import build
from regbench.core.registry import compose
from regbench.core.spec import Run
from regbench.training import checkpoints
from regbench.training.weights import weights_key

log = logging.getLogger("regbench")


def calibration_of(overrides: list[str]) -> tuple[Run, str | None]:
    """(run, calibration key) of a combination as the runner computes them, or (run, None)
    when the method calibrates nothing or its checkpoint is missing (it never trains)."""
    run = Run.from_config(compose(overrides))
    method = build(run.method.model)
    if not method.calibration_space():
        return run, None
    spec, key = checkpoints.spec_of(run), weights_key(run)
    if spec is not None:  # the checkpoint's hyperparameters are where the search started: part of the key
        found = checkpoints.load(run.folders, checkpoints.weights_name(spec), key)
        if found is None:
            log.warning("skipped: %s: no checkpoint for key %s", run.method.name, key)
            return run, None
        checkpoints.trained_part(spec, method).load_state_dict(found[0])
    return run, calibrations.calibration_key(run, method.hp, key)


def release_combination(overrides: list[str]) -> dict | None:
    run, key = calibration_of(overrides)
    if key is None:
        return None
    try:
        record = calibrations.release(run, run.method.name, key, overrides)
    except FileNotFoundError as err:
        log.warning("skipped: %s", err)
        return None
    log.info(
        "%s on %s: released %s (%.2f dB) into %s",
        run.method.name,
        run.task.name,
        record["hp"],
        record["psnr"],
        calibrations.released_path(run.folders),
    )
    return record


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s")
    axes = [[f"{a.split('=', 1)[0]}={v}" for v in a.split("=", 1)[1].split(",")] if "," in a else [a] for a in argv]
    released = [r for combo in itertools.product(*axes) if (r := release_combination(list(combo)))]
    log.info("released %d calibrations", len(released))
