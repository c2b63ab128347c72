"""Mount the `methods/` and `datasets/` folders as plugin packages.

They are imported as `regbench_methods.<module>` and `regbench_datasets.<module>`
(the way benchopt loads a benchmark's solvers/ and datasets/ folders), never as
top-level `methods`/`datasets`: a top-level `datasets` would shadow Hugging
Face's package. The folders therefore carry no `__init__.py`.
Extra folders (a user's own methods) can be added with REGBENCH_PLUGINS
(os.pathsep-separated list of roots that contain methods/ and/or datasets/).
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PLUGIN_PACKAGES = {"regbench_methods": "methods", "regbench_datasets": "datasets"}


def plugin_roots() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("REGBENCH_PLUGINS", "").split(os.pathsep) if p]
    return [REPO_ROOT, *extra]


def mount_plugin_folders() -> None:
    for package, folder in PLUGIN_PACKAGES.items():
        paths = [str(root / folder) for root in plugin_roots() if (root / folder).is_dir()]
        module = sys.modules.get(package)
        if module is None:
            spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
            module = importlib.util.module_from_spec(spec)
            module.__path__ = []
            sys.modules[package] = module
        for p in paths:
            if p not in module.__path__:
                module.__path__.append(p)
