"""Run one combination method x task x probe: train (or load), calibrate, evaluate, store.

train once per (method, training data, seed)   -> content-addressed checkpoint
calibrate per (method, task)                    -> lambda etc. on calibration images
evaluate per (method, task, probe level)        -> one row per test image
aggregate                                       -> results.parquet, leaderboard.{md,csv}
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from regbench.calibration.fit import fit_hyperparameters
from regbench.core.device import resolve_device
from regbench.core.hashing import config_hash, portable
from regbench.core.instantiate import build, check_targets
from regbench.core.provenance import device_name, git_rev
from regbench.core.spec import Run
from regbench.core.validate import validate
from regbench.datasets.task import Sample, Task
from regbench.evaluation.examples import ExampleKeeper
from regbench.evaluation.metrics import image_metrics, peak_memory_mb, psnr
from regbench.evaluation.reconstruct import Reconstruction
from regbench.probes.base import Probe
from regbench.results.loggers import log_combination
from regbench.results.store import ResultStore, atomic_write_text
from regbench.solvers.options import solver_options
from regbench.training.weights import prepare_weights

log = logging.getLogger("regbench")


def combination_key(run: Run) -> str:
    """What a combination's rows depend on (never where data or outputs live); a training scheme
    other than the method's own (`training=...`) is part of it, the method's own is in its config."""
    return config_hash(
        portable(run.method.config),
        portable(run.task.config),
        portable(run.probe.config),
        portable(run.profile.config),
        run.seed,
        *([] if run.method.own_training else [portable(run.method.training)]),
    )


class Traces:
    """PSNR-vs-iteration of the first images at level 0 (energy-based methods), saved as OUT/traces/<label>.json."""

    def __init__(self, run: Run, n: int):
        self.path, self.n, self.items = run.folders.out / "traces" / f"{run.label}.json", n, []
        self.meta = {"method": run.method.label, "task": run.task.name, "probe": run.probe.name}

    def callback(self, sample, level):
        if level != 0 or len(self.items) >= self.n:
            return None
        item = {"image_id": sample.image_id, "level": level, "psnr": []}
        self.items.append(item)
        return lambda k, x: item["psnr"].append(psnr(x, sample.x, sample.max_pixel))

    def save(self) -> None:
        if self.items:
            atomic_write_text(self.path, json.dumps({**self.meta, "images": self.items}))


def evaluate(run: Run, recon: Reconstruction, task, device, common: dict) -> list[dict]:
    """The rows of every probe level: each test image reconstructed with the calibrated `recon`."""
    rows, method = [], recon.method
    n, crop = run.n_test, run.profile.test_crop
    total = len(task.test.ids()[:n] if n else task.test.ids())
    probe = build(run.probe.spec)
    # the first images of each level as PNGs, for W&B and the report
    examples = ExampleKeeper(run.examples, run.folders.out, common)
    stochastic = getattr(method, "stochastic", False)
    seeds = list(run.method.seeds) if stochastic else [0]  # samplers: each image once per seed (rows: sample_seed)
    energy = run.evidence.options()
    energy_based = getattr(method, "energy_based", False)
    traces = Traces(run, run.evidence.traces if energy_based else 0)
    for level in probe.levels:
        samples = tqdm(
            probe.samples(task, level, n, crop, run.seed, device),
            total=total,
            desc=f"eval {run.method.name} {run.probe.name}={level}",
            disable=not run.progress,
            mininterval=5,
        )
        level_recon, level_columns = probe.solving(recon, level)
        row_recon = level_recon.with_options(**energy) if energy_based else level_recon  # the same x
        for s in samples:
            s = probe.adapt(level_recon, task, s, level, run.seed)
            trace = traces.callback(s, level) if energy_based else None
            for seed in seeds:
                sample_recon = row_recon.with_options(seed=seed) if stochastic else row_recon
                if trace is not None and seed == seeds[0]:
                    sample_recon = sample_recon.with_options(callback=trace)
                row = Row(run, probe, task, s, level, seed, seed == seeds[0], common, level_columns)
                rows.append(evaluate_one(row, sample_recon, level_recon, device, examples))
    traces.save()
    return rows


@dataclass(frozen=True)
class Row:
    """Where a row belongs: its combination, sample and level, and whether it is the image's first seed."""

    run: Run
    probe: Probe
    task: Task
    sample: Sample
    level: float
    sample_seed: int
    first_seed: bool
    common: dict
    level_columns: dict


def evaluate_one(row: Row, recon: Reconstruction, level_recon: Reconstruction, device, examples) -> dict:
    """One row: reconstruct the sample with `recon`, score it, add the probe's columns."""
    s, level = row.sample, row.level
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    x_hat, info, status = recon.guarded(s)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    failed = x_hat is None
    metrics = {"psnr": float("nan"), "ssim": float("nan")} if failed else image_metrics(x_hat, s.x, s.max_pixel)
    if status != "ok":
        log.warning("%s %s level %s: %s", row.run.method.name, s.image_id, level, status)
    if not failed and row.first_seed:
        examples.add(level, s, x_hat, metrics)
        metrics.update(row.probe.extra(level_recon, row.task, s, x_hat, row.run.seed))
    return {
        **row.common,
        "level": level,
        "variant": row.probe.label(level),
        "image_id": s.image_id,
        "sample_seed": row.sample_seed,
        "height": s.x.shape[-2],
        "width": s.x.shape[-1],
        **metrics,
        **row.level_columns,
        "seconds": seconds,
        "iterations": int(info.iterations),
        "converged": info.converged is not False and not failed,  # None: a fixed number of steps
        "rel_change": float(info.rel_change),
        "grad_ratio": float(info.grad_ratio),  # the solver's scale-free stop: gradient mapping over its first
        "line_search_evals": int(info.line_search_evals),
        "step": float(info.step),
        "energy_monotone": info.energy_monotone,  # energy-based methods: did the sampled energy never increase
        "status": status,
        "peak_mem_mb": peak_memory_mb(device),
    }


def run(cfg: DictConfig) -> dict:
    """The command line's job: check the composed config, resolve it into a `Run`, execute it."""
    validate(cfg)
    check_targets(cfg.method)
    check_targets(cfg.task)
    check_targets(cfg.probe)
    return execute(Run.from_config(cfg))


def execute(run: Run, method=None, weights: dict | None = None) -> dict:
    """Train (or load), calibrate, evaluate and store one combination; skip it when its rows exist.
    `method`, `weights`: a method object to evaluate instead of building the spec's model, and what its
    weights are (prepare_weights' record), for models given as they are (`regbench.evaluate`)."""
    device = resolve_device(run.device)
    if run.threads:
        torch.set_num_threads(int(run.threads))
    out = run.folders.out
    store = ResultStore(out)
    store.check_writable()
    combo, label = combination_key(run), run.label
    if store.has(combo) and not run.retrain:
        log.info("%s: finished already (%s), skipping", label, store.rows_path(combo))
        store.refresh()
        return {"label": label, "skipped": True}
    if run.config is not None:
        atomic_write_text(out / "configs" / f"{label}.yaml", OmegaConf.to_yaml(run.config, resolve=True))

    task = build(run.task.spec)
    method = (build(run.method.model) if method is None else method).to(device)
    weights = prepare_weights(run, method, device) if weights is None else weights
    method.eval()
    hp, calib_psnr, calib_seconds = fit_hyperparameters(run, method, task, device, weights["key"])
    recon = Reconstruction(method, hp, solver_options(run.profile, run.method))
    common = {
        "method": run.method.label,
        "training": weights["training"],
        "weights": weights["weights"],
        "task": run.task.name,
        "probe": run.probe.name,
        "seed": run.seed,
        "params": method.n_params(),
        "config_hash": combo,
        "checkpoint": weights["key"],
        "git_rev": git_rev(),
        "device": device_name(device),
        "profile": run.profile.name,
        "train_minutes": weights["train_minutes"],
        "hyper": json.dumps(hp, sort_keys=True),
        "calib_psnr": calib_psnr,
        "calib_seconds": calib_seconds,
    }
    t0 = time.perf_counter()
    rows = evaluate(run, recon, task, device, common)
    store.write_rows(combo, rows)
    board = store.refresh()
    log_combination(run, rows, board)  # logger=wandb: one W&B run; never raises
    mine = board[(board.method == common["method"]) & (board.task == run.task.name) & (board.probe == run.probe.name)]
    for r in mine.itertuples():
        log.info(
            "%s level %s: PSNR %.2f +- %.2f dB, SSIM %.4f, %.2fs/image over %d images (eval %.0fs)",
            label,
            r.level,
            r.psnr_mean,
            r.psnr_std,
            r.ssim_mean,
            r.seconds_mean,
            r.n_images,
            time.perf_counter() - t0,
        )
    log.info("leaderboard: %s", out / "leaderboard.md")
    return {"label": label, "skipped": False, "rows": len(rows)}
