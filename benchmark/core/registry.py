"""Registries of methods, training schemes, tasks, probes and profiles: the YAML files of configs/<group>/.

Adding `configs/method/foo.yaml` registers method `foo`; nothing else to edit.
Plugin roots (REGBENCH_PLUGINS folders, installed `regbench.methods` entry points,
see core/plugins.py) bring their own configs/<group>/: they join the registries
and Hydra's search path.
Names given on the command line are checked here before Hydra composes
anything, so a typo fails at start-up in one line that lists the known names.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

from omegaconf import OmegaConf

from regbench.core.plugins import REPO_ROOT, plugin_roots

CONFIG_DIR = REPO_ROOT / "configs"
GROUPS = ("method", "training", "task", "probe", "profile", "logger", "experiment")


class RegistryError(ValueError):
    pass


def config_dirs() -> list[Path]:
    """configs/ of the repository and of every plugin root (REGBENCH_PLUGINS, entry points)."""
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


def _yaml(group: str, name: str):
    for d in reversed(config_dirs()):
        path = d / group / f"{name}.yaml"
        if path.exists():
            return OmegaConf.load(path)
    raise RegistryError(f"unknown {group} {name!r}; known {group}s: {', '.join(known(group))}")


def sweep_members(group: str) -> list[str]:
    """The registered names of `group` that a default sweep covers: all of them, less those
    whose YAML says `sweep: false`."""
    return [name for name in known(group) if _yaml(group, name).get("sweep", True) is not False]


def register_resolvers() -> None:
    """`${registered:method}` in a config (an experiment's sweep) is every method of the registry
    that joins default sweeps, comma-separated: the sweep list is never typed by hand."""
    if not OmegaConf.has_resolver("registered"):
        OmegaConf.register_new_resolver("registered", lambda group: ",".join(sweep_members(group)))


def sweep_params(experiment: str) -> dict[str, list[str]]:
    """The axes an experiment sweeps (`hydra.sweeper.params`), resolved: group -> names."""
    register_resolvers()
    params = OmegaConf.select(_yaml("experiment", experiment), "hydra.sweeper.params") or {}
    params = OmegaConf.to_container(params, resolve=True)
    return {k: [v.strip() for v in str(value).split(",")] for k, value in params.items()}


def compose(overrides: list[str]):
    """The full config of one run, composed as the command line composes it (also from inside a
    running Hydra app, whose config search it then shares)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_resolvers()
    overrides = [*overrides, *hydra_searchpath_override()]
    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name="config", overrides=overrides)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def method_config(name: str):
    """configs/method/<name>.yaml composed with its defaults (shared blocks such as the BSDS500
    splits), interpolations left for the config it joins to resolve."""
    return compose([f"method={name}"]).method


def training_yaml(name: str):
    """configs/training/<name>.yaml: a training scheme's class, settings and budgets."""
    return _yaml("training", name)


def method_yaml(name: str):
    """configs/method/<name>.yaml (of the repository or a plugin root), unresolved."""
    return _yaml("method", name)


def incompatibility(method_tasks, method: str, task: str) -> str | None:
    """Why `method` cannot run `task` (its `tasks:` globs), or None."""
    if not method_tasks or any(fnmatch.fnmatch(task, pattern) for pattern in method_tasks):
        return None
    return f"{method} x {task} (method {method} runs only on tasks matching {', '.join(method_tasks)})"


def _choices(args: list[str], group: str) -> list[str]:
    """The names a command line sweeps for `group`: its override, else the experiment's
    sweep, else the config default."""
    for arg in args:
        key, sep, value = arg.lstrip("+").partition("=")
        if sep and key == group:
            return [] if value.startswith(("choice(", "glob(", "range(")) else [v.strip() for v in value.split(",")]
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key == "experiment" and value not in ("null", ""):
            params = sweep_params(value)
            if group in params:
                return params[group]
    default = {"method": "tv", "task": "denoise_bsd68"}[group]
    return [default]


def check_pairs(args: list[str]) -> None:
    """Reject incompatible method x task pairs of a sweep before any job starts, all listed."""
    bad = []
    for method in _choices(args, "method"):
        tasks = OmegaConf.select(_yaml("method", method), "tasks")
        for task in _choices(args, "task"):
            why = incompatibility(list(tasks) if tasks else None, method, task)
            if why:
                bad.append(why)
    if bad:
        raise RegistryError("incompatible method x task pairs: " + "; ".join(bad))
