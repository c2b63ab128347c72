"""Loggers publish finished results where users look, besides OUT (`logger=none | wandb`).

Two calls, neither of which can fail a sweep (any error is one warning line):

- `log_combination(cfg, rows, board)`: the runner's call after a combination's
  rows are stored (W&B: one run per combination);
- `log_leaderboard(cfg)`: at the end of a sweep or single run, from the Hydra
  callback `LeaderboardCallback` that `configs/logger/wandb.yaml` registers
  (W&B: one leaderboard run holding OUT's leaderboard tables). A callback, not
  the runner, because only the launcher knows when the last job has finished;
  with any launcher it runs once, in the process that started the sweep.

A logger instance lives for the whole process, so a fallback (online -> offline
-> off) decided in one job holds for the rest of the sweep.
"""
from __future__ import annotations

import logging

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("regbench")


class Logger:
    """logger=none: publishes nothing."""

    def combination(self, cfg: DictConfig, rows: list[dict], board) -> None:
        pass

    def leaderboard(self, cfg: DictConfig) -> None:
        pass


_instances: dict = {}


def get(cfg: DictConfig) -> Logger:
    name = str(cfg.logger.get("name", "none"))
    key = (name, str(cfg.out))
    if key not in _instances:
        if name == "none":
            _instances[key] = Logger()
        elif name == "wandb":
            from regbench.results.wandb_logger import WandbLogger

            _instances[key] = WandbLogger(cfg)
        else:
            raise ValueError(f"logger.name={name!r} is not allowed; allowed: none, wandb")
    return _instances[key]


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


def log_combination(cfg: DictConfig, rows: list[dict], board) -> None:
    """Publish one finished combination; never raises."""
    try:
        get(cfg).combination(cfg, rows, board)
    except Exception as err:  # a logger never fails the sweep
        log.warning("logger %s: could not log this combination (%s); results in OUT are complete", cfg.logger.get("name"), one_line(err))


def log_leaderboard(cfg: DictConfig) -> None:
    """Publish OUT's leaderboard; never raises."""
    try:
        get(cfg).leaderboard(cfg)
    except Exception as err:
        log.warning("logger %s: could not log the leaderboard (%s); results in OUT are complete", cfg.logger.get("name"), one_line(err))


class LeaderboardCallback(Callback):
    """Hydra callback: the leaderboard run at the end of a multirun (or of a single run)."""

    def on_run_end(self, config: DictConfig, **kwargs) -> None:
        log_leaderboard(config)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        log_leaderboard(config)
