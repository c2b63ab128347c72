"""The weights a run uses: trained here within the profile's budget (resumable), loaded
from the cache or the release, or warm-started from another method's."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch

from regbench.core.device import make_deterministic
from regbench.core.hashing import config_hash, portable
from regbench.core.instantiate import build
from regbench.core.locks import file_lock
from regbench.core.provenance import device_name, git_rev
from regbench.core.spec import Folders, MethodSpec, Run
from regbench.datasets.patches import PatchSampler
from regbench.training import checkpoints
from regbench.training.schemes import scheme_for

log = logging.getLogger("regbench")
SWEEP_STARTED = "REGBENCH_SWEEP_STARTED"
_PROCESS_STARTED = time.time()


def train_method(run: Run, method, device: torch.device, spec: dict) -> dict:
    """Train `method` on its training data within the profile's budget; returns its manifest entry."""
    make_deterministic()
    torch.manual_seed(run.seed)
    warm_start(run, method, device, spec)
    data = build(run.method.config.train.data)
    patches = PatchSampler(data, n_images=spec["train"].get("n_images"), seed=run.seed, device=device)
    budget = {
        **spec["train"],
        "seed": run.seed,
        "snapshot": str(snapshot_path(run.folders, spec)),
        "snapshot_every_s": run.snapshot_every_s,
    }
    scheme = scheme_for(run.method.name, spec, method)
    label = f"{checkpoints.weights_name(spec)} ({spec['training']})"
    train_log = scheme.train(method, patches, budget, progress=run.progress, label=label)
    minutes = float(train_log.pop("minutes", 0.0))
    return {
        "method": checkpoints.weights_name(spec),
        "training": spec["training"],
        "spec": spec,
        "git_rev": git_rev(),
        "device": device_name(device),
        "train_minutes": minutes,
        "params": method.n_params(),
        "log": train_log,
    }


def snapshot_path(folders: Folders, spec: dict) -> Path:
    """Where an unfinished training of this spec keeps its state (resumed by the next run, removed once saved)."""
    return folders.cache / "snapshots" / f"{checkpoints.weights_name(spec)}-{checkpoints.checkpoint_key(spec)}.pt"


def warm_start(run: Run, method, device: torch.device, spec: dict) -> None:
    """`train.init: <method>`: training starts from that method's trained weights (loaded, or
    trained first when neither the cache nor the release has them), e.g. the diffusion prior
    from PnP's denoiser. The part trained here takes the same-named submodule of the other
    method (`train.weights.module`), or the whole method. Under retrain=true only this method retrains:
    a valid checkpoint for the other's key is used (`make train-release` has just released it)."""
    if not spec["train"].get("init"):
        return
    other_run = checkpoints.init_run(run)
    other = build(other_run.method.model).to(device)
    prepare_weights(other_run, other, device)
    source = checkpoints.trained_part(spec, other)  # the other method's part with this one's module name
    checkpoints.trained_part(spec, method).load_state_dict(source.state_dict())
    log.info(
        "%s: training starts from %s's weights (key %s)",
        run.method.name,
        spec["train"]["init"]["method"],
        spec["train"]["init"]["key"],
    )


def job_started() -> float:
    """When the sweep began (set once by the command line, inherited by launcher jobs)."""
    return float(os.environ.get(SWEEP_STARTED) or _PROCESS_STARTED)


def cpu_state(method) -> dict:
    return {k: v.cpu() if torch.is_tensor(v) else v for k, v in method.state_dict().items()}


def weights_key(run: Run) -> str:
    """The key of the weights a combination uses: its checkpoint's, or (nothing trained) its model config's."""
    spec = checkpoints.spec_of(run)
    return untrained_key(run.method) if spec is None else checkpoints.checkpoint_key(spec)


def untrained_key(method: MethodSpec) -> str:
    """The weights key of a method with nothing to train: its model config's hash."""
    return config_hash(portable(method.model))


def external_weights(run: Run, method) -> dict:
    """`weights: {path, sha256}` in the method's YAML: weights trained elsewhere, checked and loaded, never
    trained here (a file whose hash differs is an error that names it and both hashes)."""
    from regbench.methods.external import load_weights, weights_source

    named = run.method.config.weights
    method.load_state_dict(load_weights(named.path, named.sha256))
    source = weights_source(named.sha256)
    log.info("%s: weights from %s (%s)", run.method.label, named.path, source)
    return {"key": str(named.sha256).lower()[:16], "train_minutes": 0.0, "training": "none", "weights": source}


def prepare_weights(run: Run, method, device: torch.device) -> dict:
    """Load the checkpoint for this training config, or train and save one; returns its key, training
    minutes, training scheme ("none": nothing trained) and where the weights come from (`weights`:
    "regbench" trained here or released, "external:<sha256 prefix>", "none")."""
    if run.method.config.get("weights") is not None:
        return external_weights(run, method)
    spec = checkpoints.spec_of(run)
    if spec is None:
        return {"key": untrained_key(run.method), "train_minutes": 0.0, "training": "none", "weights": "none"}
    key, name = checkpoints.checkpoint_key(spec), checkpoints.weights_name(spec)
    part = checkpoints.trained_part(spec, method)
    # parallel jobs needing the same weights: one trains, the others wait and load
    folders = run.folders
    with file_lock(folders.cache / "locks" / f"{name}-{key}.lock"):
        fresh = run.retrain and not checkpoints.trained_since(folders, name, key, job_started())
        found = None if fresh else checkpoints.load(folders, name, key)
        if found is not None:
            state, entry = found
            part.load_state_dict(state)
            method.to(device)
            log.info("%s: using checkpoint %s (%s)", run.method.label, entry["file"], entry.get("device", "?"))
            minutes = float(entry.get("train_minutes", 0.0))
            return {"key": key, "train_minutes": minutes, "training": spec["training"], "weights": "regbench"}
        log.info("%s: training (checkpoint key %s)", run.method.label, key)
        entry = train_method(run, method, device, spec)
        checkpoints.save(folders, name, key, cpu_state(part), entry)
        snapshot_path(folders, spec).unlink(missing_ok=True)
    return {"key": key, "train_minutes": entry["train_minutes"], "training": spec["training"], "weights": "regbench"}
