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
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from regbench.calibration.fit import fit_hyperparameters
from regbench.core.device import resolve_device
from regbench.core.hashing import config_hash, portable
from regbench.core.instantiate import build, check_targets
from regbench.core.provenance import device_name, git_rev
from regbench.core.validate import validate
from regbench.evaluation.examples import ExampleKeeper
from regbench.evaluation.metrics import image_metrics, peak_memory_mb, psnr
from regbench.evaluation.reconstruct import guarded_reconstruct
from regbench.results.loggers import log_combination
from regbench.results.store import ResultStore, atomic_write_text
from regbench.solvers.options import convergence_options, solver_options
from regbench.training.weights import prepare_weights

log = logging.getLogger("regbench")
SWEEP_STARTED = "REGBENCH_SWEEP_STARTED"
_PROCESS_STARTED = time.time()


def combination_key(cfg: DictConfig) -> str:
    """What a combination's rows depend on (never where data or outputs live)."""
    return config_hash(portable(cfg.method), portable(cfg.task), portable(cfg.probe), portable(cfg.profile), cfg.seed)


def combination_label(cfg: DictConfig) -> str:
    return f"{cfg.method.name}__{cfg.task.name}__{cfg.probe.name}"


def evaluated_images(cfg: DictConfig) -> int | None:
    """How many test images to evaluate: the profile's `data.n_test`, capped by the method's
    `reconstruct.<profile>.n_test` (samplers, whose cost is steps x seeds per image, may
    evaluate the first N test images only; the leaderboard's `images` column shows it)."""
    n = cfg.profile.data.n_test
    cap = OmegaConf.select(cfg.method, f"reconstruct.{cfg.profile.name}.n_test", default=None)
    if cap is None:
        return n
    return int(cap) if n is None else min(int(n), int(cap))


def sample_seeds(cfg: DictConfig, method) -> list[int]:
    """Seeds a stochastic method (sampler) is evaluated with, once per test image each
    (`reconstruct.<profile>.seeds`, default [0]); deterministic methods: [0]."""
    if not getattr(method, "stochastic", False):
        return [0]
    per_profile = cfg.method.get("reconstruct") or {}
    seeds = OmegaConf.select(per_profile, f"{cfg.profile.name}.seeds") if per_profile else None
    return [int(s) for s in seeds] if seeds else [0]


class Traces:
    """PSNR-vs-iteration of the first images at level 0 (energy-based methods), saved as OUT/traces/<label>.json."""

    def __init__(self, cfg: DictConfig, n: int):
        self.path, self.n, self.items = Path(cfg.out) / "traces" / f"{combination_label(cfg)}.json", n, []
        self.meta = {"method": cfg.method.name, "task": cfg.task.name, "probe": cfg.probe.name}

    def callback(self, sample, level):
        if level != 0 or len(self.items) >= self.n:
            return None
        item = {"image_id": sample.image_id, "level": level, "psnr": []}
        self.items.append(item)
        return lambda k, x: item["psnr"].append(psnr(x, sample.x, sample.max_pixel))

    def save(self) -> None:
        if self.items:
            atomic_write_text(self.path, json.dumps({**self.meta, "images": self.items}))


def evaluate(cfg: DictConfig, method, task, device, common: dict) -> list[dict]:
    rows = []
    solver = solver_options(cfg)
    n, crop = evaluated_images(cfg), cfg.profile.data.test_crop
    total = len(task.test.ids()[:n] if n else task.test.ids())
    probe = build(cfg.probe.spec)
    examples = ExampleKeeper(cfg, common)  # the first images of each level as PNGs, for W&B and the report
    seeds = sample_seeds(cfg, method)  # samplers: each image once per seed; rows carry it (sample_seed)
    stochastic = getattr(method, "stochastic", False)
    energy, n_traces = convergence_options(cfg)
    energy_based = getattr(method, "energy_based", False)
    traces = Traces(cfg, n_traces if energy_based else 0)
    row_solver = {**solver, **energy} if energy_based else solver  # energy tracking leaves x unchanged
    recon = lambda sample: guarded_reconstruct(method, sample, solver)[:2]  # noqa: E731
    for level in probe.levels:
        samples = tqdm(
            probe.samples(task, level, n, crop, cfg.seed, device),
            total=total,
            desc=f"eval {cfg.method.name} {cfg.probe.name}={level}",
            disable=not cfg.progress,
            mininterval=5,
        )
        with probe.solving(method, level) as level_columns:
            for s in samples:
                s = probe.adapt(method, task, s, level, solver, cfg.seed, recon)
                trace = traces.callback(s, level) if energy_based else None
                for seed in seeds:
                    run_solver = {**row_solver, "seed": seed} if stochastic else row_solver
                    if trace is not None and seed == seeds[0]:
                        run_solver = {**run_solver, "callback": trace}
                    rows.append(
                        evaluate_one(
                            cfg,
                            method,
                            task,
                            probe,
                            s,
                            level,
                            seed,
                            seeds,
                            run_solver,
                            solver,
                            device,
                            examples,
                            common,
                            level_columns,
                        )
                    )
    traces.save()
    return rows


def evaluate_one(
    cfg, method, task, probe, s, level, seed, seeds, run_solver, solver, device, examples, common, level_columns
) -> dict:
    """One row: reconstruct sample `s`, score it, add the probe's columns."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    x_hat, info, status = guarded_reconstruct(method, s, run_solver)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    failed = x_hat is None
    metrics = {"psnr": float("nan"), "ssim": float("nan")} if failed else image_metrics(x_hat, s.x, s.max_pixel)
    if status != "ok":
        log.warning("%s %s level %s: %s", cfg.method.name, s.image_id, level, status)
    if not failed and seed == seeds[0]:
        examples.add(level, s, x_hat, metrics)
        metrics.update(
            probe.extra(
                method, task, s, x_hat, solver, cfg.seed, lambda sample: guarded_reconstruct(method, sample, solver)[:2]
            )
        )
    return {
        **common,
        "level": level,
        "variant": probe.label(level),
        "image_id": s.image_id,
        "sample_seed": seed,
        "height": s.x.shape[-2],
        "width": s.x.shape[-1],
        **metrics,
        **level_columns,
        "seconds": seconds,
        "iterations": int(info.get("iterations", 0)),
        "converged": bool(info.get("converged", True)) and not failed,
        "rel_change": float(info.get("rel_change", float("nan"))),
        "energy_monotone": info.get("energy_monotone"),  # energy-based methods: did the sampled energy never increase
        "status": status,
        "peak_mem_mb": peak_memory_mb(device),
    }


def run(cfg: DictConfig) -> dict:
    validate(cfg)
    check_targets(cfg.method)
    check_targets(cfg.task)
    check_targets(cfg.probe)
    device = resolve_device(str(cfg.device))
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    store = ResultStore(cfg.out)
    store.check_writable()
    combo, label = combination_key(cfg), combination_label(cfg)
    if store.has(combo) and not cfg.retrain:
        log.info("%s: finished already (%s), skipping", label, store.rows_path(combo))
        store.refresh()
        return {"label": label, "skipped": True}
    atomic_write_text(Path(cfg.out) / "configs" / f"{label}.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    task = build(cfg.task.spec)
    method = build(cfg.method.model).to(device)
    weights = prepare_weights(cfg, method, device)
    method.eval()
    hp, calib_psnr, calib_seconds = fit_hyperparameters(cfg, method, task, device, weights["key"])
    common = {
        "method": cfg.method.name,
        "task": cfg.task.name,
        "probe": cfg.probe.name,
        "seed": int(cfg.seed),
        "params": method.n_params(),
        "config_hash": combo,
        "checkpoint": weights["key"],
        "git_rev": git_rev(),
        "device": device_name(device),
        "profile": cfg.profile.name,
        "train_minutes": weights["train_minutes"],
        "hyper": json.dumps(hp, sort_keys=True),
        "calib_psnr": calib_psnr,
        "calib_seconds": calib_seconds,
    }
    t0 = time.perf_counter()
    rows = evaluate(cfg, method, task, device, common)
    store.write_rows(combo, rows)
    board = store.refresh()
    log_combination(cfg, rows, board)  # logger=wandb: one W&B run; never raises
    mine = board[(board.method == cfg.method.name) & (board.task == cfg.task.name) & (board.probe == cfg.probe.name)]
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
    log.info("leaderboard: %s", Path(cfg.out) / "leaderboard.md")
    return {"label": label, "skipped": False, "rows": len(rows)}
