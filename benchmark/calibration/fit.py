"""Fit a method's calibrated hyperparameters on a task's calibration images (or reuse a cached fit)."""

from __future__ import annotations

import logging
import time

from regbench.calibration import cache as calibrations
from regbench.calibration.search import calibrate
from regbench.core.spec import Run
from regbench.evaluation.metrics import image_metrics
from regbench.evaluation.reconstruct import Reconstruction
from regbench.solvers.options import solver_options

log = logging.getLogger("regbench")


def fit_hyperparameters(run: Run, method, task, device, weights_key: str) -> tuple[dict, float, float]:
    """Calibrate on the task's calibration images, unless the cache or the released calibrations
    hold this key (benchmark/calibration/cache.py). Returns (hyperparameters, calibration PSNR,
    seconds the calibration took when it ran)."""
    space = method.calibration_space()
    if not space:
        return dict(method.hp), float("nan"), 0.0
    name, profile = run.method.name, run.profile
    key = calibrations.calibration_key(run, method.hp, weights_key)
    found = None if run.retrain else calibrations.lookup(run.folders, name, key)
    if found is not None:
        record, source = found
        log.info("%s: calibration from %s: %s", name, source, record["hp"])
        return method.hyper(record["hp"]), record["psnr"], float(record.get("seconds", float("nan")))
    samples = list(task.samples("calib", profile.n_calib, profile.calib_crop, run.seed, device))
    options = solver_options(profile, run.method)
    cap = profile.calibrate_max_iter  # far-off values (lambda x100) need thousands of iterations only to
    if cap:  # rank last: a cap keeps the search cheap (the optimum converges below it)
        options = options.replace(max_iter=min(int(cap), options.max_iter))

    evaluations = 0

    def mean_psnr(hp: dict) -> float:
        nonlocal evaluations
        started = time.perf_counter()
        recon = Reconstruction(method, hp, options)
        scores = []
        for s in samples:
            x_hat, _ = recon(s)
            scores.append(image_metrics(x_hat, s.x, s.max_pixel)["psnr"])
        value = sum(scores) / len(scores)
        evaluations += 1  # the progress of a search whose length depends on where its optimum lies
        log.info(
            "%s: calibration evaluation %d: %s -> %.2f dB (%.1fs)",
            name,
            evaluations,
            {k: round(v, 5) for k, v in hp.items()},
            value,
            time.perf_counter() - started,
        )
        return value if value == value else float("-inf")  # NaN (diverged) ranks last

    t0 = time.perf_counter()
    hp, psnr = calibrate(space, method.hp, mean_psnr, profile.calibrate_evals)
    seconds = time.perf_counter() - t0
    log.info(
        "%s: calibrated %s -> %.2f dB on %d calibration images (%.1fs)",
        name,
        {k: round(v, 5) for k, v in hp.items()},
        psnr,
        len(samples),
        seconds,
    )
    calibrations.save(run.folders, name, key, hp, psnr, seconds)
    return hp, psnr, seconds
