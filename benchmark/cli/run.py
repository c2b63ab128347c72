"""Command line: `regbench run [-m] method=... task=... profile=...`.

Registry names on the command line are checked before Hydra composes the
config, and config errors are reported in one line, before any work starts.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import hydra
from omegaconf import DictConfig

from regbench.cli.precheck import check_sweep
from regbench.core.registry import (
    CONFIG_DIR,
    RegistryError,
    check_overrides,
    check_pairs,
    hydra_searchpath_override,
    register_resolvers,
)
from regbench.core.validate import ConfigError

log = logging.getLogger("regbench")


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def main(cfg: DictConfig):
    from regbench.core.allocator import tune_malloc
    from regbench.evaluation.runner import run  # heavy imports after argument checks

    tune_malloc()  # again in each launcher worker process
    register_resolvers()

    try:
        return run(cfg)
    except (ConfigError, RegistryError, OSError) as err:
        log.error("%s", err)
        raise SystemExit(2)


def check_out(args: list[str]) -> None:
    """Hydra writes its logs under OUT before any job starts: check OUT first."""
    from regbench.results.store import ResultStore

    for arg in args:
        if arg.startswith("out="):
            ResultStore(arg.split("=", 1)[1]).check_writable()


def cli(argv: list[str] | None = None) -> None:
    """Check the overrides, then hand them to Hydra (which reads sys.argv)."""
    args = sys.argv[1:] if argv is None else list(argv)
    register_resolvers()
    try:
        check_overrides(args)
        check_pairs(args)
        check_sweep(args, hydra_searchpath_override())
        check_out(args)
    except (RegistryError, ConfigError, OSError) as err:
        print(f"regbench: error: {err}", file=sys.stderr)
        raise SystemExit(2)
    os.environ.setdefault("REGBENCH_SWEEP_STARTED", str(time.time()))  # see training.weights.job_started
    sys.argv = [sys.argv[0], *args, *hydra_searchpath_override()]
    main()
