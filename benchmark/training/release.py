"""`make train-release`: retrain every trainable method of the default sweep, and every
(method, training scheme) pair of experiment=training_schemes, in the cpu profile and write
results/weights/ (checkpoints + MANIFEST.json).

Each manifest entry records the method's training spec (whose hash is the
checkpoint key), training data, seed, git revision, device, training minutes
and the calibration PSNR on the default task; the calibration itself is released into
CALIBRATIONS.json (benchmark/calibration/cache.py). Usage:
    regbench train-release [method=crr] [training=score] [profile=cpu] [from_cache=true]

from_cache=true releases the checkpoint a `make benchmark` run already trained
into the cache for the same key (same spec, so the same weights it would train
again), instead of training a second time.
"""

from __future__ import annotations

import logging

from regbench.calibration import cache as calibrations
from regbench.calibration.fit import fit_hyperparameters
from regbench.core.device import resolve_device
from regbench.core.instantiate import build
from regbench.core.registry import compose, method_yaml, sweep_members, sweep_params
from regbench.core.spec import Run
from regbench.training import checkpoints
from regbench.training.weights import cpu_state, snapshot_path, train_method

log = logging.getLogger("regbench")


def released_methods() -> list[str]:
    """The methods whose weights are released: every trained method of the default sweep, one per
    checkpoint name (DPS shares DiffPIR's diffusion prior), warm-start sources before their users."""
    chosen, names = [], set()
    for method in sweep_members("method"):
        train = method_yaml(method).get("train")
        if train is None:
            continue
        shared = train.get("weights")
        name = shared["name"] if shared else method
        if name not in names:
            names.add(name)
            chosen.append(method)
    starts_from = {m: method_yaml(m).train.get("init") for m in chosen}
    return sorted(chosen, key=lambda m: (starts_from[m] is not None, chosen.index(m)))


def released_pairs() -> list[tuple[str, str | None]]:
    """(method, training) of every released checkpoint: the default sweep's methods under their own
    scheme (None), then each pair of experiment=training_schemes under another scheme."""
    pairs: list[tuple[str, str | None]] = [(m, None) for m in released_methods()]
    axes = sweep_params("training_schemes")
    for method in axes["method"]:
        own = method_yaml(method).train.get("scheme")
        pairs += [(method, scheme) for scheme in axes["training"] if scheme != own]
    return pairs


RUNTIME = ("progress=",)  # how a release runs, not what it releases: never recorded with it


def release(
    method: str, profile: str = "cpu", overrides: tuple[str, ...] = (), from_cache: bool = False, runtime=()
) -> dict:
    """Train (or take from the cache) the checkpoint of `method` under `overrides` (e.g. `training=score`),
    calibrate it on its default task and write both into results/weights/."""
    run = Run.from_config(compose([f"method={method}", f"profile={profile}", "retrain=true", *overrides, *runtime]))
    folders = run.folders
    spec = checkpoints.spec_of(run)
    key, name = checkpoints.checkpoint_key(spec), checkpoints.weights_name(spec)
    device = resolve_device(run.device)
    model = build(run.method.model).to(device)
    part = checkpoints.trained_part(spec, model)
    cached = checkpoints.load_cached(folders, name, key) if from_cache else None
    if from_cache and cached is None:
        raise SystemExit(
            f"{method}: no valid cached checkpoint for key {key} in {folders.cache}; run without from_cache"
        )
    if cached is not None:
        state, entry = cached
        part.load_state_dict(state)
        model.to(device)
        entry = {k: v for k, v in entry.items() if k not in ("key", "file", "sha256", "created")}
        log.info("%s: releasing the cached checkpoint (key %s, trained %s)", method, key, cached[1].get("created"))
    else:
        log.info("%s: training for release (key %s)", method, key)
        entry = train_method(run, model, device, spec)
    model.eval()
    state = cpu_state(part)  # before calibration: the checkpoint carries the hyperparameters training left
    calibration_key = calibrations.calibration_key(run, model.hp, key)
    task = build(run.task.spec)
    hp, psnr, _ = fit_hyperparameters(run, model, task, device, key)
    entry["calibration"] = {
        "method": method,
        "overrides": list(overrides),  # what composes this checkpoint's config besides method and profile
        "task": run.task.name,
        "hp": hp,
        "psnr": psnr,
        "images": run.profile.n_calib,
        "crop": run.profile.calib_crop,
    }
    released = checkpoints.save(folders, name, key, state, entry, folder=folders.weights)
    for stale in checkpoints.drop_superseded(folders.weights, released):
        log.info("%s: removed the superseded release %s", method, stale)
    snapshot_path(folders, spec).unlink(missing_ok=True)  # the release holds the weights: the snapshot is obsolete
    calibrations.release(run, method, calibration_key, [f"method={method}", f"profile={profile}", *overrides])
    return released


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s")
    methods = [a.split("=", 1)[1] for a in argv if a.startswith("method=")]
    profile = next((a.split("=", 1)[1] for a in argv if a.startswith("profile=")), "cpu")
    from_cache = any(a == "from_cache=true" for a in argv)
    runtime = tuple(a for a in argv if a.startswith(RUNTIME))
    rest = tuple(a for a in argv if not a.startswith(("method=", "profile=", "from_cache=", *RUNTIME)))
    if methods:
        jobs = [(name, rest) for name in ",".join(methods).split(",")]
    else:
        jobs = [(name, (*([f"training={t}"] if t else []), *rest)) for name, t in released_pairs()]
    for name, overrides in jobs:
        entry = release(name, profile, overrides, from_cache, runtime)
        log.info(
            "%s: released %s (%.1f min, calibration %.2f dB)",
            name,
            entry["file"],
            entry["train_minutes"],
            entry["calibration"]["psnr"],
        )
