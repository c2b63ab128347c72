"""Build objects from `_target_` configs, with an allowlist of modules.

Hydra 1.4 turns `_target_` resolution into an allowlist decided by trusted code.
regbench pins hydra-core 1.3 and enforces the same rule itself: every target must
live in one of ALLOWED_PREFIXES or an installed plugin's package (extend with REGBENCH_TARGETS, comma-separated),
so configs cannot instantiate arbitrary callables, and moving to 1.4 means
passing the same list as Hydra's whitelist.
"""

from __future__ import annotations

import os
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from regbench.core.plugins import entry_point_packages, extend_packages

ALLOWED_PREFIXES = ("regbench.", "deepinv.", "torch.")


def allowed_prefixes() -> tuple[str, ...]:
    extra = tuple(p.strip() for p in os.environ.get("REGBENCH_TARGETS", "").split(",") if p.strip())
    return ALLOWED_PREFIXES + tuple(f"{p}." for p in entry_point_packages()) + extra


def _targets(node: Any, path: str = ""):
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path or "<root>", str(node["_target_"])
        for k in node.keys():
            yield from _targets(node[k], f"{path}.{k}" if path else str(k))
    elif isinstance(node, ListConfig):
        for i, v in enumerate(node):
            yield from _targets(v, f"{path}[{i}]")


def check_targets(cfg: DictConfig) -> None:
    prefixes = allowed_prefixes()
    for key, target in _targets(cfg):
        if not target.startswith(prefixes):
            raise ValueError(
                f"{key}._target_={target!r} is not allowed; targets must start with one of "
                f"{', '.join(prefixes)} (extend with REGBENCH_TARGETS)"
            )


def build(cfg: DictConfig | dict, **kwargs: Any) -> Any:
    if isinstance(cfg, dict):
        cfg = OmegaConf.create(cfg)
    check_targets(cfg)
    extend_packages()
    return instantiate(cfg, **kwargs)
