"""Registries of methods, tasks, probes and profiles: the YAML files of configs/<group>/.

Adding `configs/method/foo.yaml` registers method `foo`; nothing else to edit.
Names given on the command line are checked here before Hydra composes
anything, so a typo fails at start-up in one line that lists the known names.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.plugins import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "configs"
GROUPS = ("method", "task", "probe", "profile", "logger", "experiment")


class RegistryError(ValueError):
    pass


def known(group: str, config_dir: Path = CONFIG_DIR) -> list[str]:
    return sorted(p.stem for p in (config_dir / group).glob("*.yaml"))


def check(group: str, name: str, config_dir: Path = CONFIG_DIR) -> None:
    names = known(group, config_dir)
    if name not in names:
        raise RegistryError(f"unknown {group} {name!r}; known {group}s: {', '.join(names)}")


def check_overrides(args: list[str], config_dir: Path = CONFIG_DIR) -> None:
    """Check `group=a,b` command-line choices (plain, multirun lists, `+`/`~` prefixes)."""
    for arg in args:
        key, sep, value = arg.lstrip("+~").partition("=")
        if not sep or key not in GROUPS:
            continue
        value = value.strip()
        if value.startswith(("choice(", "glob(", "range(")) or value in ("null", ""):
            continue
        for name in value.split(","):
            check(key, name.strip(), config_dir)
