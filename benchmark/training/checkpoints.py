"""Content-addressed checkpoints: key = hash(method, model, training config, training data, seed).

Looked up first in the cache folder (git-ignored), then among the released
checkpoints in results/weights (MANIFEST.json); any config change changes the
key, so a stale checkpoint is never used silently. Files are checksummed
(sha256 in their manifest entry) and written by rename: a truncated or corrupt
file is reported in one line and retrained.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from regbench.core.hashing import config_hash, portable
from regbench.core.registry import compose, known, training_yaml
from regbench.core.spec import Folders, MethodSpec, Run
from regbench.results.store import atomic_write, atomic_write_text

log = logging.getLogger(__name__)
MANIFEST = "MANIFEST.json"


def training_spec(method_cfg: DictConfig, profile: str, seed: int, training: DictConfig | None = None) -> dict | None:
    """Everything a trained model depends on; None for methods with nothing to train.

    `training`: the scheme's config (configs/training/<name>.yaml, the run's `training`), or None
    for the method's own (`train.scheme`). The training settings are the scheme's, then the
    method's `train:` keys over them, then the profile's budget (the scheme's, and under the
    method's own scheme its `train.budget.<profile>` key by key over it: a budget is sized for
    one scheme's steps).
    A method whose YAML says `train.weights: {name, module}` trains only its submodule
    `module` and keys it under `name`: methods that share a network and its training
    (DiffPIR and DPS share one diffusion prior) share one checkpoint.
    `train.init` (a warm start, see `init_overrides`) belongs to the method's own scheme: under
    another scheme the method trains from its initialization.
    """
    if method_cfg.get("train") is None:
        if training is not None:
            raise ValueError(f"method {method_cfg.name!r} has nothing to train: no training scheme applies to it")
        return None
    train = OmegaConf.to_container(method_cfg.train, resolve=True)
    budgets = train.pop("budget", None) or {}
    shared = train.pop("weights", None)
    own_scheme = train.pop("scheme", None)
    scheme_name, scheme = scheme_settings(method_cfg.name, own_scheme, training)
    scheme_budgets = scheme.pop("budget", None) or {}
    if scheme_name != own_scheme:  # the method's budget and warm start belong to its own scheme
        budgets = {}
        train.pop("init", None)
    if profile not in budgets and profile not in scheme_budgets:
        known = sorted({*budgets, *scheme_budgets})
        raise ValueError(
            f"method {method_cfg.name!r} under training scheme {scheme_name!r} has no training budget for profile "
            f"{profile!r}; it has: {', '.join(known) or 'none'}"
        )
    budget = {**(scheme_budgets.get(profile) or {}), **(budgets.get(profile) or {})}
    data = portable(train.pop("data"))
    model = OmegaConf.to_container(method_cfg.model, resolve=True)
    name = method_cfg.name
    if shared is not None:
        name, module = shared["name"], shared["module"]
        if module not in model:
            raise ValueError(
                f"method {method_cfg.name!r}: train.weights.module {module!r} is not a key of its model config"
            )
        model = {"module": module, **model[module]}
    if train.get("init") is not None:
        # warm start: the key of the weights training starts from is part of this one's
        other = init_source(method_cfg.name, train["init"], f"profile={profile}", f"seed={seed}")
        starts_from = training_spec(other.method, profile, seed, other.get("training"))
        train["init"] = {"method": train["init"], "key": checkpoint_key(starts_from)}
    return {
        "method": name,
        "model": model,
        "training": scheme_name,
        "train": {**scheme, **train, **budget},
        "data": data,
        "seed": seed,
    }


def spec_of(run: Run) -> dict | None:
    """The training spec of a run (its method, training scheme, profile and seed)."""
    return training_spec(run.method.config, run.profile.name, run.seed, run.method.training)


def scheme_settings(method: str, default: str | None, training: DictConfig | None) -> tuple[str, dict]:
    """(scheme name, its settings without the class) of the run's `training`, or of the method's default."""
    if training is None:
        if not default:
            raise ValueError(
                f"method {method!r} trains but names no training scheme: add train.scheme "
                f"(one of: {', '.join(known('training'))})"
            )
        training = training_yaml(default)
    settings = OmegaConf.to_container(training, resolve=True)
    settings.pop("_target_", None)
    return settings.pop("name"), settings


def init_run(run: Run) -> Run:
    """The run of the method named by this run's `train.init` (same profile, seed and folders): its
    YAML in place of this run's method, trained under its own scheme, never retrained here (under
    retrain=true only this run's method retrains)."""
    name = run.method.config.train.init
    data = [f"data.download={str(run.download).lower()}", *([f"data.root={run.data_root}"] if run.data_root else [])]
    other = init_source(run.method.name, name, f"profile={run.profile.name}", f"seed={run.seed}", *data)
    method = MethodSpec.from_config(other.method, run.profile.name, other.get("training"))
    return run.replace(method=method, retrain=False)


def init_source(owner: str, init: str, *overrides: str) -> DictConfig:
    """The composed config (with `overrides`) of what method `owner`'s warm start `train.init` starts from;
    an error when that method trains nothing."""
    other = compose([*init_overrides(init), *overrides])
    if other.method.get("train") is None:
        raise ValueError(f"method {owner!r}: train.init={init!r} names a method with nothing trained")
    return other


def init_overrides(init: str) -> list[str]:
    """`train.init` as config overrides: `<method>` (its own training scheme) or `<method>+<scheme>` (that
    method under another scheme of configs/training/, e.g. `lsr+score`: bilevel training after a
    score-matching warm-up of the same network)."""
    method, plus, scheme = str(init).partition("+")
    if not method or (plus and not scheme):
        raise ValueError(f"train.init={init!r}: expected <method> or <method>+<training scheme>")
    return [f"method={method}", *([f"training={scheme}"] if scheme else [])]


def weights_name(spec: dict) -> str:
    """The name checkpoint files carry: the method's, or the shared network's."""
    return spec["method"]


def trained_part(spec: dict, method: torch.nn.Module) -> torch.nn.Module:
    """The module whose state a checkpoint holds: the method, or its shared submodule."""
    module = spec["model"].get("module") if isinstance(spec["model"], dict) else None
    return getattr(method, module) if module else method


def checkpoint_key(spec: dict) -> str:
    return config_hash(spec)


def _sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def _candidates(folders: Folders, name: str, key: str):
    cache = folders.cache / "checkpoints"
    entry_file = cache / f"{name}-{key}.json"
    if entry_file.exists():
        try:
            yield cache / f"{name}-{key}.pt", json.loads(entry_file.read_text())
        except json.JSONDecodeError:
            log.warning("checkpoint manifest %s is corrupt; ignoring it", entry_file)
    released = folders.weights
    entry = _read_manifest(released).get(key)
    if entry is not None:
        yield released / entry["file"], entry


def trained_since(folders: Folders, name: str, key: str, started: float) -> bool:
    """Whether the cache holds a checkpoint for `key` trained after `started` (epoch
    seconds): under retrain=true, a sweep's parallel jobs train each model once."""
    entry_file = folders.cache / "checkpoints" / f"{name}-{key}.json"
    try:
        created = dt.datetime.fromisoformat(json.loads(entry_file.read_text())["created"]).timestamp()
    except (OSError, ValueError, KeyError):
        return False
    return created >= int(started)


def entry(folders: Folders, name: str, key: str) -> dict | None:
    """The manifest entry (training log included) of the checkpoint for `key`, without reading weights."""
    return next((e for _, e in _candidates(folders, name, key)), None)


def load_cached(folders: Folders, name: str, key: str) -> tuple[dict, dict] | None:
    """Like `load`, but only the cache (what a run trained), never the released folder."""
    released = folders.weights
    for path, entry in _candidates(folders, name, key):
        if path.parent != released and path.exists() and _sha256(path.read_bytes()) == entry.get("sha256"):
            return torch.load(path, map_location="cpu", weights_only=True), entry
    return None


def load(folders: Folders, name: str, key: str) -> tuple[dict, dict] | None:
    """(state_dict, manifest entry) of a valid checkpoint for `key`, or None."""
    for path, entry in _candidates(folders, name, key):
        if not path.exists():
            continue
        blob = path.read_bytes()
        if _sha256(blob) != entry.get("sha256"):
            log.warning("checkpoint %s is corrupt or truncated (sha256 mismatch); retraining", path)
            continue
        return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True), entry
    return None


def drop_superseded(folder: Path, entry: dict) -> list[str]:
    """Remove the released checkpoints that `entry` supersedes: those released for the same method
    and overrides under another key (a changed config). Returns the files removed."""
    manifest = _read_manifest(folder)

    def released_as(e: dict) -> tuple:  # the weights' name and the overrides that compose their config
        return e.get("method"), tuple((e.get("calibration") or {}).get("overrides") or ())

    stale = [key for key, other in manifest.items() if key != entry["key"] and released_as(other) == released_as(entry)]
    for key in stale:
        (folder / manifest.pop(key)["file"]).unlink(missing_ok=True)
    if stale:
        atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
    return stale


def save(folders: Folders, name: str, key: str, state: dict, entry: dict, folder: Path | None = None) -> dict:
    """Write the checkpoint and its manifest entry (to the cache unless `folder` is given)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    blob = buffer.getvalue()
    entry = {
        **entry,
        "key": key,
        "file": f"{name}-{key}.pt",
        "sha256": _sha256(blob),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    folder = folder or folders.cache / "checkpoints"
    atomic_write(folder / entry["file"], lambda p: p.write_bytes(blob))
    if folder == folders.cache / "checkpoints":
        atomic_write_text(folder / f"{name}-{key}.json", json.dumps(entry, indent=2))
    else:
        manifest = _read_manifest(folder)
        manifest[key] = entry
        atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
    return entry
