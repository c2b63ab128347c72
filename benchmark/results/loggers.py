"""Loggers publish finished results where users look, besides OUT (`logger=none | wandb`).

Two calls, neither of which can fail a sweep (any error is one warning line):

- `log_combination(run, rows, board)`: the runner's call after a combination's
  rows are stored (W&B: one run per combination);
- `log_leaderboard(options, out)`: at the end of a sweep or single run, from the Hydra
  callback `LeaderboardCallback` that `configs/logger/wandb.yaml` registers
  (W&B: one leaderboard run holding OUT's leaderboard tables). A callback, not
  the runner, because only the launcher knows when the last job has finished;
  with any launcher it runs once, in the process that started the sweep.

A logger instance lives for the whole process, so a fallback (online -> offline
-> off) decided in one job holds for the rest of the sweep.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from regbench.core.spec import Folders, Run

log = logging.getLogger("regbench")


class Logger:
    """logger=none: publishes nothing."""

    def combination(self, run: Run, rows: list[dict], board) -> None:
        pass

    def leaderboard(self) -> None:
        pass


_instances: dict = {}


def get(options: dict, out: Path) -> Logger:
    """The process's logger for `options` (the run's `logger` block) writing beside `out`."""
    name = str(options.get("name", "none"))
    key = (name, str(out))
    if key not in _instances:
        if name == "none":
            _instances[key] = Logger()
        elif name == "wandb":
            from regbench.results.wandb_logger import WandbLogger

            _instances[key] = WandbLogger(options, out)
        else:
            raise ValueError(f"logger.name={name!r} is not allowed; allowed: none, wandb")
    return _instances[key]


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


def log_combination(run: Run, rows: list[dict], board) -> None:
    """Publish one finished combination; never raises."""
    try:
        get(run.logger, run.folders.out).combination(run, rows, board)
    except Exception as err:  # a logger never fails the sweep
        log.warning(
            "logger %s: could not log this combination (%s); results in OUT are complete",
            run.logger.get("name"),
            one_line(err),
        )


def log_leaderboard(options: dict, out: Path) -> None:
    """Publish OUT's leaderboard; never raises."""
    try:
        get(options, out).leaderboard()
    except Exception as err:
        log.warning(
            "logger %s: could not log the leaderboard (%s); results in OUT are complete",
            options.get("name"),
            one_line(err),
        )


def _leaderboard_of(config: DictConfig) -> None:
    """The edge: a Hydra callback's config, resolved into the logger options and OUT."""
    options = OmegaConf.to_container(config.logger, resolve=True) if config.get("logger") else {"name": "none"}
    log_leaderboard(options, Folders.from_config(config).out)


class LeaderboardCallback(Callback):
    """Hydra callback: the leaderboard run at the end of a multirun (or of a single run)."""

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        _leaderboard_of(config)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        _leaderboard_of(config)
