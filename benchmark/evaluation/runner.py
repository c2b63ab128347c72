"""Run one combination method x task x probe: train (or load), calibrate, evaluate, store.

train once per (method, training data, seed)   -> content-addressed checkpoint
calibrate per (method, task)                    -> lambda etc. on calibration images
evaluate per (method, task, probe level)        -> one row per test image
aggregate                                       -> results.parquet, leaderboard.{md,csv}
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from regbench.calibration import cache as calibrations
from regbench.calibration.search import calibrate
from regbench.core.device import make_deterministic, resolve_device
from regbench.core.hashing import config_hash, portable
from regbench.core.instantiate import build, check_targets
from regbench.core.locks import file_lock
from regbench.core.provenance import device_name, git_rev
from regbench.core.validate import validate
from regbench.datasets.patches import PatchSampler
from regbench.evaluation.examples import ExampleKeeper
from regbench.evaluation.metrics import image_metrics, peak_memory_mb, psnr
from regbench.results.loggers import log_combination
from regbench.results.store import ResultStore, atomic_write_text
from regbench.training import checkpoints

log = logging.getLogger("regbench")
SWEEP_STARTED = "REGBENCH_SWEEP_STARTED"
_PROCESS_STARTED = time.time()


def combination_key(cfg: DictConfig) -> str:
    """What a combination's rows depend on (never where data or outputs live)."""
    return config_hash(portable(cfg.method), portable(cfg.task), portable(cfg.probe), portable(cfg.profile), cfg.seed)


def combination_label(cfg: DictConfig) -> str:
    return f"{cfg.method.name}__{cfg.task.name}__{cfg.probe.name}"


def solver_options(cfg: DictConfig) -> dict:
    return {
        "tol": float(cfg.profile.solver.tol),
        "max_iter": int(cfg.profile.solver.max_iter),
        "compile": bool(cfg.profile.solver.get("compile", False)),
        **reconstruct_options(cfg),
    }


def reconstruct_options(cfg: DictConfig) -> dict:
    """The method's own reconstruction settings for this profile (`reconstruct.<profile>` in its
    YAML, e.g. sampler steps), seeds excluded. Not part of the checkpoint key: changing them
    never retrains (they are part of the combination key and the calibration key)."""
    per_profile = cfg.method.get("reconstruct")
    if not per_profile:
        return {}
    options = OmegaConf.to_container(per_profile[cfg.profile.name], resolve=True)  # validate() checked it is there
    options.pop("seeds", None)
    options.pop("n_test", None)
    return options


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


def train_method(cfg: DictConfig, method, device: torch.device, spec: dict) -> dict:
    """Train `method` on its training data within the profile's budget; returns its manifest entry."""
    make_deterministic()
    torch.manual_seed(cfg.seed)
    warm_start(cfg, method, device, spec)
    data = build(cfg.method.train.data)
    patches = PatchSampler(data, n_images=spec["train"].get("n_images"), seed=cfg.seed, device=device)
    budget = {
        **spec["train"],
        "seed": cfg.seed,
        "snapshot": str(snapshot_path(cfg, spec)),
        "snapshot_every_s": float(cfg.snapshot_every_s),
    }
    train_log = method.fit(patches, budget, progress=cfg.progress)
    minutes = float(train_log.pop("minutes", 0.0))
    return {
        "method": checkpoints.weights_name(spec),
        "spec": spec,
        "git_rev": git_rev(),
        "device": device_name(device),
        "train_minutes": minutes,
        "params": method.n_params(),
        "log": train_log,
    }


def snapshot_path(cfg: DictConfig, spec: dict) -> Path:
    """Where an unfinished training of this spec keeps its state (resumed by the next run, removed once saved)."""
    return (
        checkpoints.cache_root(cfg)
        / "snapshots"
        / f"{checkpoints.weights_name(spec)}-{checkpoints.checkpoint_key(spec)}.pt"
    )


def warm_start(cfg: DictConfig, method, device: torch.device, spec: dict) -> None:
    """`train.init: <method>`: training starts from that method's trained weights (loaded, or
    trained first when neither the cache nor the release has them), e.g. the diffusion prior
    from PnP's denoiser. The part trained here takes the same-named submodule of the other
    method (`train.weights.module`), or the whole method. Under retrain=true only this method retrains:
    a valid checkpoint for the other's key is used (`make train-release` has just released it)."""
    if not spec["train"].get("init"):
        return
    other_cfg = checkpoints.init_config(cfg.method)
    other_cfg.retrain = False
    other = build(other_cfg.method.model).to(device)
    prepare_weights(other_cfg, other, device)
    source = checkpoints.trained_part(spec, other)  # the other method's part with this one's module name
    checkpoints.trained_part(spec, method).load_state_dict(source.state_dict())
    log.info(
        "%s: training starts from %s's weights (key %s)",
        cfg.method.name,
        spec["train"]["init"]["method"],
        spec["train"]["init"]["key"],
    )


def job_started() -> float:
    """When the sweep began (set once by the command line, inherited by launcher jobs)."""
    return float(os.environ.get(SWEEP_STARTED) or _PROCESS_STARTED)


def cpu_state(method) -> dict:
    return {k: v.cpu() if torch.is_tensor(v) else v for k, v in method.state_dict().items()}


def weights_key(cfg: DictConfig) -> str:
    """The key of the weights a combination uses: its checkpoint's, or (nothing trained) its model config's."""
    spec = checkpoints.training_spec(cfg.method, cfg.profile.name, cfg.seed)
    return config_hash(portable(cfg.method.model)) if spec is None else checkpoints.checkpoint_key(spec)


def prepare_weights(cfg: DictConfig, method, device: torch.device) -> dict:
    """Load the checkpoint for this training config, or train and save one."""
    spec = checkpoints.training_spec(cfg.method, cfg.profile.name, cfg.seed)
    if spec is None:
        return {"key": weights_key(cfg), "train_minutes": 0.0}
    key, name = checkpoints.checkpoint_key(spec), checkpoints.weights_name(spec)
    part = checkpoints.trained_part(spec, method)
    # parallel jobs needing the same weights: one trains, the others wait and load
    with file_lock(checkpoints.cache_root(cfg) / "locks" / f"{name}-{key}.lock"):
        fresh = cfg.retrain and not checkpoints.trained_since(cfg, name, key, job_started())
        found = None if fresh else checkpoints.load(cfg, name, key)
        if found is not None:
            state, entry = found
            part.load_state_dict(state)
            method.to(device)
            log.info("%s: using checkpoint %s (%s)", cfg.method.name, entry["file"], entry.get("device", "?"))
            return {"key": key, "train_minutes": float(entry.get("train_minutes", 0.0))}
        log.info("%s: training (checkpoint key %s)", cfg.method.name, key)
        entry = train_method(cfg, method, device, spec)
        checkpoints.save(cfg, name, key, cpu_state(part), entry)
        snapshot_path(cfg, spec).unlink(missing_ok=True)
    return {"key": key, "train_minutes": entry["train_minutes"]}


def reconstruct(method, sample, solver: dict):
    """The method's reconstruction of a sample, told the operator facts its task states."""
    return method.reconstruct(sample.y, sample.physics, sample.x0, {**solver, "operator": sample.operator})


def guarded_reconstruct(method, sample, solver: dict):
    """(x_hat or None, solve info, status): a crashing or diverging solve becomes a
    row marked failed with its reason, and the sweep goes on."""
    try:
        x_hat, info = reconstruct(method, sample, solver)
    except (RuntimeError, ValueError, ArithmeticError) as err:
        return None, {"converged": False}, f"failed: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
    status = info.get("status", "ok")
    if status.startswith("diverged"):
        return None, info, f"failed: {status}"
    if not bool(torch.isfinite(x_hat).all()):
        return None, info, "failed: non-finite reconstruction" + (f" ({status})" if status != "ok" else "")
    return x_hat, info, status


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
        method.hp.update(record["hp"])
        log.info("%s: calibration from %s: %s", cfg.method.name, source, record["hp"])
        return record["hp"], record["psnr"], float(record.get("seconds", float("nan")))
    samples = list(task.samples("calib", cfg.profile.data.n_calib, cfg.profile.data.calib_crop, cfg.seed, device))
    solver = solver_options(cfg)
    cap = cfg.profile.calibrate.get("max_iter")  # far-off values (lambda x100) need thousands of iterations only to
    if cap:  # rank last: a cap keeps the search cheap (the optimum converges below it)
        solver["max_iter"] = min(int(cap), solver["max_iter"])

    def mean_psnr(hp: dict) -> float:
        saved = dict(method.hp)
        method.hp.update(hp)
        try:
            scores = []
            for s in samples:
                x_hat, _ = reconstruct(method, s, solver)
                scores.append(image_metrics(x_hat, s.x, s.max_pixel)["psnr"])
            value = sum(scores) / len(scores)
            return value if value == value else float("-inf")  # NaN (diverged) ranks last
        finally:
            method.hp.clear()
            method.hp.update(saved)

    t0 = time.perf_counter()
    hp, psnr = calibrate(method, mean_psnr, int(cfg.profile.calibrate.evals))
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


def convergence_options(cfg: DictConfig) -> tuple[dict, int]:
    """(solver options that track the energy on the rows of energy-based methods, or {}; PSNR-vs-iteration
    traces per combination)."""
    conv = cfg.get("convergence") or {}
    energy = (
        {"track_energy": True, "energy_every": int(conv.get("energy_every", 1))} if conv.get("energy", False) else {}
    )
    return energy, int(conv.get("traces", 2))


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
