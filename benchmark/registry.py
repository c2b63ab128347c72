"""Registries of methods, tasks, probes and profiles: the YAML files of configs/<group>/.

Adding `configs/method/foo.yaml` registers method `foo`; nothing else to edit.
Plugin roots named in REGBENCH_PLUGINS may bring their own configs/<group>/
(and methods/, datasets/ modules): they join the registries and Hydra's search path.
Names given on the command line are checked here before Hydra composes
anything, so a typo fails at start-up in one line that lists the known names.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.plugins import REPO_ROOT, plugin_roots

CONFIG_DIR = REPO_ROOT / "configs"
GROUPS = ("method", "task", "probe", "profile", "logger", "experiment")


class RegistryError(ValueError):
    pass


def config_dirs() -> list[Path]:
    """configs/ of the repository and of every extra plugin root (REGBENCH_PLUGINS)."""
    return [CONFIG_DIR, *(r / "configs" for r in plugin_roots()[1:] if (r / "configs").is_dir())]


def hydra_searchpath_override() -> list[str]:
    extra = config_dirs()[1:]
    return [f"hydra.searchpath=[{','.join(f'file://{d.resolve()}' for d in extra)}]"] if extra else []


def known(group: str) -> list[str]:
    return sorted({p.stem for d in config_dirs() for p in (d / group).glob("*.yaml")})


def check(group: str, name: str) -> None:
    names = known(group)
    if name not in names:
        raise RegistryError(f"unknown {group} {name!r}; known {group}s: {', '.join(names)}")


def check_overrides(args: list[str]) -> None:
    """Check `group=a,b` command-line choices (plain, multirun lists, `+`/`~` prefixes)."""
    for arg in args:
        key, sep, value = arg.lstrip("+~").partition("=")
        if not sep or key not in GROUPS:
            continue
        value = value.strip()
        if value.startswith(("choice(", "glob(", "range(")) or value in ("null", ""):
            continue
        for name in value.split(","):
            check(key, name.strip())
