"""The solver and reconstruction settings a run's config gives (profile, method YAML)."""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("regbench")


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


def convergence_options(cfg: DictConfig) -> tuple[dict, int]:
    """(solver options that track the energy on the rows of energy-based methods, or {}; PSNR-vs-iteration
    traces per combination)."""
    conv = cfg.get("convergence") or {}
    energy = (
        {"track_energy": True, "energy_every": int(conv.get("energy_every", 1))} if conv.get("energy", False) else {}
    )
    return energy, int(conv.get("traces", 2))
