"""Check a composed config before any work starts: one line per problem, naming key, value and what is allowed."""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf

from regbench.core.device import ALLOWED as DEVICES
from regbench.core.registry import incompatibility, known
from regbench.core.spec import profile_node

# Settings that vary by profile are one spelling: a block keyed by profile name under what it sizes
# (the model's widths, the training budget, the reconstruction settings).
PER_PROFILE = ("size", "train.budget", "reconstruct")


class ConfigError(ValueError):
    pass


def _require(ok: bool, key: str, value, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed; allowed: {allowed}")


def validate(cfg: DictConfig) -> None:
    _require(
        str(cfg.device) in DEVICES or str(cfg.device).startswith("cuda:"),
        "device",
        cfg.device,
        "auto, cpu, cuda, cuda:N",
    )
    threads = cfg.get("threads")
    _require(
        threads is None or (isinstance(threads, int) and threads >= 1), "threads", threads, "null or an integer >= 1"
    )
    _require(isinstance(cfg.seed, int) and cfg.seed >= 0, "seed", cfg.seed, "an integer >= 0")
    p = profile_node(cfg)
    unknown = set(cfg.get("sweep_data") or {}) - set(known("profile"))
    _require(not unknown, "sweep_data", sorted(unknown), f"profile names ({', '.join(known('profile'))})")
    for key in ("n_test", "test_crop", "n_calib", "calib_crop"):
        v = p.data[key]
        _require(v is None or (isinstance(v, int) and v > 0), f"profile.data.{key}", v, "null or an integer > 0")
    _require(float(p.solver.tol) > 0, "profile.solver.tol", p.solver.tol, "a tolerance > 0")
    _require(
        isinstance(p.solver.max_iter, int) and p.solver.max_iter >= 1,
        "profile.solver.max_iter",
        p.solver.max_iter,
        "an integer >= 1",
    )
    _require(
        isinstance(p.calibrate.evals, int) and p.calibrate.evals >= 3,
        "profile.calibrate.evals",
        p.calibrate.evals,
        "an integer >= 3",
    )
    for key, value in (cfg.task.get("spec") or {}).items():
        if key in ("sigma", "noise", "noise_level") and isinstance(value, (int, float)):
            _require(value >= 0, f"task.spec.{key}", value, "a noise level >= 0")
    levels = list(cfg.probe.spec.levels)
    _require(
        len(levels) > 0 and levels[0] == 0,
        "probe.spec.levels",
        levels,
        "a list starting with level 0 (the nominal task)",
    )
    profiles = known("profile")
    for block in PER_PROFILE:
        node = OmegaConf.select(cfg.method, block, default=None)
        unknown = sorted(set(node.keys()) - set(profiles)) if hasattr(node, "keys") else []
        _require(
            not unknown,
            f"method.{block} (of {cfg.method.name})",
            unknown,
            f"sections named by profile: {', '.join(profiles)}",
        )
    per_profile = cfg.method.get("reconstruct")
    if per_profile:
        _require(
            per_profile.get(p.name) is not None,
            f"method.reconstruct (of {cfg.method.name})",
            sorted(k for k, v in per_profile.items() if v is not None),
            f"a section for profile {p.name!r}",
        )
        seeds = per_profile[p.name].get("seeds")
        _require(
            seeds is None
            or (isinstance(seeds, ListConfig) and len(seeds) > 0 and all(isinstance(s, int) and s >= 0 for s in seeds)),
            f"method.reconstruct.{p.name}.seeds",
            seeds,
            "a non-empty list of integers >= 0",
        )
        n_test = per_profile[p.name].get("n_test")
        _require(
            n_test is None or (isinstance(n_test, int) and n_test > 0),
            f"method.reconstruct.{p.name}.n_test",
            n_test,
            "null or an integer > 0",
        )
    why = probe_incompatibility(cfg)
    if why:
        raise ConfigError(f"incompatible probe x task pair: {cfg.probe.name} x {cfg.task.name}: {why}")
    tasks = cfg.method.get("tasks")
    why = incompatibility(list(tasks) if tasks else None, cfg.method.name, cfg.task.name)
    if why:
        raise ConfigError(f"incompatible method x task pair: {why}")


def _target_class(node):
    """The class a `_target_` names (allowlisted modules only; None if it cannot be imported)."""
    from hydra.utils import get_class

    from regbench.core.instantiate import allowed_prefixes
    from regbench.core.plugins import extend_packages

    target = str((node or {}).get("_target_", ""))
    if not target.startswith(allowed_prefixes()):
        return None
    extend_packages()
    try:
        return get_class(target)
    except Exception:
        return None


def probe_incompatibility(cfg: DictConfig) -> str | None:
    """Why the probe cannot run the task (e.g. operator_mismatch on denoising), or None."""
    probe, task = _target_class(cfg.probe.get("spec")), _target_class(cfg.task.get("spec"))
    if probe is None or task is None or not hasattr(probe, "incompatible"):
        return None
    return probe.incompatible(task)
