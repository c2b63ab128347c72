"""`make perf OUT=dir`: how fast regbench is, measured, not asserted in tests.

Writes
  dir/perf.csv           one row per method x image: the benchmark solve (profile
                         solver, tol 1e-4; again with the rows' energy tracking) and a
                         reference solve (plain accelerated gradient, no restart, not
                         compiled, tol 1e-6) of the same model
  dir/perf_training.csv  training throughput (patches/s) per trainable method
  dir/perf.md            both tables plus the smoke sweep's wall time and the machine
Usage:
    regbench perf out=DIR [methods=tv,crr,wcrr] [images=4] [crop=none] [train_steps=5] [smoke=true]
"""

from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from regbench.calibration.fit import fit_hyperparameters
from regbench.core.device import resolve_device
from regbench.core.instantiate import build
from regbench.core.plugins import REPO_ROOT
from regbench.core.provenance import device_name, git_rev
from regbench.core.registry import compose as compose_config
from regbench.core.spec import Run
from regbench.datasets.patches import PatchSampler
from regbench.evaluation.metrics import image_metrics
from regbench.evaluation.reconstruct import Reconstruction
from regbench.results.store import atomic_write, atomic_write_text
from regbench.solvers.options import SolverOptions, solver_options
from regbench.solvers.report import SolveReport
from regbench.training.checkpoints import spec_of
from regbench.training.schemes import load_scheme
from regbench.training.weights import prepare_weights

log = logging.getLogger("regbench")
DEFAULTS = {
    "methods": "tv,wavelet_l1,crr,wcrr",
    "images": "4",
    "crop": "none",
    "train_steps": "5",
    "smoke": "true",
    "profile": "cpu",
}
REFERENCE = SolverOptions(tol=1e-6, max_iter=20000, restart=False, compile=False)


def compose(method: str, profile: str) -> Run:
    return Run.from_config(compose_config([f"method={method}", f"profile={profile}", "progress=false"]))


def timed(fn):
    """Wall seconds of fn(); CUDA work is asynchronous, so the clock is read after a synchronize."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def solve_rows(run: Run, n_images: int, crop: int | None = None) -> list[dict]:
    """Benchmark vs reference solve of the same calibrated model on full-size BSD68 images."""
    device = resolve_device(run.device)
    method = build(run.method.model).to(device)
    weights = prepare_weights(run, method, device)
    method.eval()
    task = build(run.task.spec)
    hp = fit_hyperparameters(run, method, task, device, weights["key"])[0]
    fast = Reconstruction(method, hp, solver_options(run.profile))  # the profile's solver alone
    energy = run.evidence.options() if getattr(method, "energy_based", False) else {}
    tracking, reference = fast.with_options(**energy), fast.replace(options=REFERENCE)
    rows = []
    for s in task.samples("test", n_images, crop, run.seed, device):
        tracking(s)  # warm-up: compilation and caches are not solve time
        (x, info), seconds = timed(lambda: fast(s))
        info_energy, seconds_energy = SolveReport(), float("nan")
        if energy:  # what a benchmark row runs: the same solve, tracking the energy
            (_, info_energy), seconds_energy = timed(lambda: tracking(s))
        (x_ref, info_ref), seconds_ref = timed(lambda: reference(s))
        psnr, psnr_ref = image_metrics(x, s.x)["psnr"], image_metrics(x_ref, s.x)["psnr"]
        rows.append(
            {
                "method": run.method.name,
                "image_id": s.image_id,
                "height": s.x.shape[-2],
                "width": s.x.shape[-1],
                "seconds": seconds,
                "iterations": info.iterations,
                "psnr": psnr,
                "tol": fast.options.tol,
                "seconds_energy": seconds_energy,
                "energy_monotone": info_energy.energy_monotone,
                "seconds_ref": seconds_ref,
                "iterations_ref": info_ref.iterations,
                "psnr_ref": psnr_ref,
                "psnr_gap": psnr - psnr_ref,
                "threads": torch.get_num_threads(),
                "device": device_name(device),
            }
        )
        log.info(
            "%s %s: %.2fs %d its %.3f dB | reference %.1fs %d its %.3f dB",
            run.method.name,
            s.image_id,
            seconds,
            info.iterations,
            psnr,
            seconds_ref,
            info_ref.iterations,
            psnr_ref,
        )
    return rows


def training_row(run: Run, steps: int) -> dict | None:
    """Patches/s of the method's training loop at its profile budget (after a 1-step warm-up)."""
    spec = spec_of(run)
    if spec is None:
        return None
    device = resolve_device(run.device)
    method = build(run.method.model).to(device)
    patches = PatchSampler(
        build(run.method.config.train.data), n_images=spec["train"].get("n_images"), seed=run.seed, device=device
    )
    budget = {**spec["train"], "seed": run.seed}
    scheme = load_scheme(spec["training"])
    scheme.train(copy.deepcopy(method), patches, {**budget, "steps": 1}, progress=False)
    _, seconds = timed(lambda: scheme.train(method, patches, {**budget, "steps": steps}, progress=False))
    n = steps * int(budget["batch"])
    return {
        "method": run.method.name,
        "steps": steps,
        "batch": int(budget["batch"]),
        "patch": int(budget["patch"]),
        "seconds": seconds,
        "patches_per_s": n / seconds,
        "threads": torch.get_num_threads(),
        "device": device_name(device),
    }


def smoke_seconds() -> float:
    """Wall time of the default sweep at smoke size, from an empty OUT and cache."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "REGBENCH_CACHE": str(Path(tmp) / "cache")}
        cmd = [
            sys.executable,
            "-m",
            "regbench.cli.run",
            "-m",
            "experiment=default",
            "profile=smoke",
            f"out={tmp}/out",
            "progress=false",
        ]
        done, seconds = timed(lambda: subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True))
    if done.returncode:
        raise RuntimeError(f"the smoke sweep failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def report(solves: pd.DataFrame, training: pd.DataFrame, smoke: float | None) -> str:
    per_method = solves.groupby("method", sort=False).agg(
        images=("image_id", "count"),
        seconds=("seconds", "mean"),
        iterations=("iterations", "mean"),
        psnr=("psnr", "mean"),
        seconds_energy=("seconds_energy", "mean"),
        seconds_ref=("seconds_ref", "mean"),
        iterations_ref=("iterations_ref", "mean"),
        psnr_ref=("psnr_ref", "mean"),
        max_abs_psnr_gap=("psnr_gap", lambda g: g.abs().max()),
    )
    lines = [
        "# regbench perf",
        "",
        f"git {git_rev()}, {solves.device.iloc[0]}, {int(solves.threads.iloc[0])} threads, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "## Reconstruction (full-size BSD68, sigma=25/255)",
        "",
        "Benchmark solve: the profile's solver (FISTA + restart, tol 1e-4, compiled gradient where "
        "the method has one); "
        "reference: plain accelerated gradient (no restart, not compiled), tol 1e-6. Means over images. "
        "seconds_energy: the benchmark solve with the energy tracked as the rows track it (`convergence`).",
        "",
        per_method.round(3).to_markdown(),
        "",
    ]
    if len(training):
        lines += ["## Training throughput", "", training.round(2).to_markdown(index=False), ""]
    if smoke is not None:
        lines += [
            f"## Smoke sweep\n\n`make smoke` (default sweep, smoke profile, empty cache): {smoke:.1f} s wall.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s")
    args = dict(DEFAULTS)
    for a in argv:
        key, sep, value = a.partition("=")
        if not sep or key not in {*DEFAULTS, "out"}:
            raise SystemExit(
                f"regbench perf: unknown argument {a!r}; known: out=DIR, " + ", ".join(f"{k}=..." for k in DEFAULTS)
            )
        args[key] = value
    if "out" not in args:
        raise SystemExit("regbench perf: out=DIR is required (make perf OUT=dir)")
    out = Path(args["out"])
    solves, training = [], []
    for name in args["methods"].split(","):
        run = compose(name, args["profile"])
        crop = None if args["crop"].lower() == "none" else int(args["crop"])
        solves += solve_rows(run, int(args["images"]), crop)
        row = training_row(run, int(args["train_steps"])) if int(args["train_steps"]) > 0 else None
        if row:
            training.append(row)
            log.info("%s training: %.1f patches/s", name, row["patches_per_s"])
    solves_df, training_df = pd.DataFrame(solves), pd.DataFrame(training)
    atomic_write(out / "perf.csv", lambda p: solves_df.to_csv(p, index=False))  # kept if the smoke sweep fails
    atomic_write(out / "perf_training.csv", lambda p: training_df.to_csv(p, index=False))
    smoke = smoke_seconds() if args["smoke"].lower() == "true" else None
    atomic_write_text(out / "perf.md", report(solves_df, training_df, smoke))
    print(f"perf: {out / 'perf.md'}")
