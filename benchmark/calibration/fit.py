"""Fit a method's calibrated hyperparameters on a task's calibration images (or reuse a cached fit)."""

from __future__ import annotations

import logging
import time

from omegaconf import DictConfig

from regbench.calibration import cache as calibrations
from regbench.calibration.search import calibrate
from regbench.evaluation.metrics import image_metrics
from regbench.evaluation.reconstruct import Reconstruction
from regbench.solvers.options import reconstruct_options, solver_options

log = logging.getLogger("regbench")


def fit_hyperparameters(cfg: DictConfig, method, task, device, weights_key: str) -> tuple[dict, float, float]:
    """Calibrate on the task's calibration images, unless the cache or the released calibrations
    hold this key (benchmark/calibration/cache.py). Returns (hyperparameters, calibration PSNR,
    seconds the calibration took when it ran)."""
    space = method.calibration_space()
    if not space:
        return dict(method.hp), float("nan"), 0.0
    key = calibrations.calibration_key(cfg, method.hp, weights_key, reconstruct_options(cfg))
    found = None if cfg.retrain else calibrations.lookup(cfg, cfg.method.name, key)
    if found is not None:
        record, source = found
        log.info("%s: calibration from %s: %s", cfg.method.name, source, record["hp"])
        return method.hyper(record["hp"]), record["psnr"], float(record.get("seconds", float("nan")))
    samples = list(task.samples("calib", cfg.profile.data.n_calib, cfg.profile.data.calib_crop, cfg.seed, device))
    options = solver_options(cfg)
    cap = cfg.profile.calibrate.get("max_iter")  # far-off values (lambda x100) need thousands of iterations only to
    if cap:  # rank last: a cap keeps the search cheap (the optimum converges below it)
        options = options.replace(max_iter=min(int(cap), options.max_iter))

    def mean_psnr(hp: dict) -> float:
        recon = Reconstruction(method, hp, options)
        scores = []
        for s in samples:
            x_hat, _ = recon(s)
            scores.append(image_metrics(x_hat, s.x, s.max_pixel)["psnr"])
        value = sum(scores) / len(scores)
        return value if value == value else float("-inf")  # NaN (diverged) ranks last

    t0 = time.perf_counter()
    hp, psnr = calibrate(space, method.hp, mean_psnr, int(cfg.profile.calibrate.evals))
    seconds = time.perf_counter() - t0
    log.info(
        "%s: calibrated %s -> %.2f dB on %d calibration images (%.1fs)",
        cfg.method.name,
        {k: round(v, 5) for k, v in hp.items()},
        psnr,
        len(samples),
        seconds,
    )
    calibrations.save(cfg, cfg.method.name, key, hp, psnr, seconds)
    return hp, psnr, seconds
