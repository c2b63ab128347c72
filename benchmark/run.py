"""Command line: `python -m benchmark.run [-m] method=... task=... profile=...`.

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

from benchmark.registry import RegistryError, check_overrides, check_pairs, hydra_searchpath_override
from benchmark.precheck import check_sweep
from benchmark.validate import ConfigError

log = logging.getLogger("regbench")


@hydra.main(version_base="1.3", config_path="../configs", config_name="config")
def main(cfg: DictConfig):
    from benchmark.runner import run  # heavy imports after argument checks

    try:
        return run(cfg)
    except (ConfigError, RegistryError, OSError) as err:
        log.error("%s", err)
        raise SystemExit(2)


def check_out(args: list[str]) -> None:
    """Hydra writes its logs under OUT before any job starts: check OUT first."""
    from benchmark.store import ResultStore

    for arg in args:
        if arg.startswith("out="):
            ResultStore(arg.split("=", 1)[1]).check_writable()


def cli() -> None:
    try:
        check_overrides(sys.argv[1:])
        check_pairs(sys.argv[1:])
        check_sweep(sys.argv[1:], hydra_searchpath_override())
        check_out(sys.argv[1:])
    except (RegistryError, ConfigError, OSError) as err:
        print(f"regbench: error: {err}", file=sys.stderr)
        raise SystemExit(2)
    os.environ.setdefault("REGBENCH_SWEEP_STARTED", str(time.time()))  # see runner.job_started
    sys.argv += hydra_searchpath_override()
    main()


if __name__ == "__main__":
    cli()
