"""Where methods, tasks and probes come from besides the repository itself.

Two ways to bring your own, neither needing an edit to regbench:
- a folder named in REGBENCH_PLUGINS (os.pathsep-separated roots), holding
  configs/<group>/*.yaml and optionally methods/*.py, datasets/*.py; those modules
  are importable as `regbench.methods.<name>` / `regbench.datasets.<name>` once
  `extend_packages()` has run (the registry and `build` call it; importing
  regbench does not);
- an installed package that declares an entry point in the `regbench.methods`
  group (`[project.entry-points."regbench.methods"] mine = "mypkg"`): the folder
  of the named module is a plugin root (its configs/ joins the registry) and
  the package's top-level name is an allowed `_target_` prefix.
"""

from __future__ import annotations

import importlib
import os
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINT_GROUP = "regbench.methods"


def folder_roots() -> list[Path]:
    return [Path(p) for p in os.environ.get("REGBENCH_PLUGINS", "").split(os.pathsep) if p]


@lru_cache(maxsize=None)
def _entry_point_modules() -> tuple[tuple[str, Path], ...]:
    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        module = importlib.import_module(ep.value.split(":")[0])
        found.append((module.__name__, Path(module.__file__).resolve().parent))
    return tuple(found)


def entry_point_roots() -> list[Path]:
    return [root for _, root in _entry_point_modules()]


def entry_point_packages() -> tuple[str, ...]:
    """Top-level package names of the installed plugins (allowed `_target_` prefixes)."""
    return tuple(sorted({name.split(".")[0] for name, _ in _entry_point_modules()}))


def plugin_roots() -> list[Path]:
    """The repository first, then REGBENCH_PLUGINS folders, then installed plugins."""
    return [REPO_ROOT, *folder_roots(), *entry_point_roots()]


def extend_packages() -> None:
    """Make the methods/ and datasets/ modules of REGBENCH_PLUGINS folders importable."""
    import regbench.datasets
    import regbench.methods

    for package, folder in ((regbench.methods, "methods"), (regbench.datasets, "datasets")):
        for root in folder_roots():
            path = str((root / folder).resolve())
            if (root / folder).is_dir() and path not in package.__path__:
                package.__path__.append(path)
