"""The name a run's rows, traces and W&B runs carry for its method (one rule, used everywhere)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from regbench.core.registry import training_yaml


def own_training(method: DictConfig, training: DictConfig | None) -> bool:
    """Whether `method` (its YAML block) is trained as its YAML says under the run's `training`: none
    given (`training=...` absent), or exactly its default scheme's config."""
    if training is None:
        return True
    default = OmegaConf.select(method, "train.scheme", default=None)
    if default is None or training.get("name") != default:
        return False
    return OmegaConf.to_container(training, resolve=True) == OmegaConf.to_container(training_yaml(default))


def method_label(method: DictConfig, training: DictConfig | None) -> str:
    """The method's name, or `<method>+<scheme>` when it is trained otherwise than its YAML says
    (`training=...`), so leaderboards keep each (method, training) pair apart."""
    return method.name if own_training(method, training) else f"{method.name}+{training.name}"
