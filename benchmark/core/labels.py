"""The name a run's rows, traces and W&B runs carry for its method (one rule, used everywhere)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from regbench.core.registry import training_yaml


def own_training(cfg: DictConfig) -> bool:
    """Whether the run trains its method as the method's YAML does: no `training=...`, or exactly its
    default scheme's config."""
    training = cfg.get("training")
    if training is None:
        return True
    default = OmegaConf.select(cfg.method, "train.scheme", default=None)
    if default is None or training.get("name") != default:
        return False
    return OmegaConf.to_container(training, resolve=True) == OmegaConf.to_container(training_yaml(default))


def method_label(cfg: DictConfig) -> str:
    """The method's name, or `<method>+<scheme>` when it is trained otherwise than its YAML says
    (`training=...`), so leaderboards keep each (method, training) pair apart."""
    return cfg.method.name if own_training(cfg) else f"{cfg.method.name}+{cfg.training.name}"
