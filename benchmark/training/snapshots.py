"""Resumable training: a loop's whole state saved every few minutes, so a run that dies loses minutes, not hours.

A training loop names its parts (network, optimizer, scheduler, random generators,
patch sampler, loose parameters); `restore()` loads the last snapshot into them and
says how many steps were done, `save()` writes one (atomically, at most every
`every_s` seconds); whoever writes the checkpoint removes the snapshot
(`regbench.training.weights.snapshot_path`). The resumed loop replays the same random
draws from the same step, so it ends with the weights an uninterrupted run gets on the
same device and thread count.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from regbench.results.store import atomic_write

log = logging.getLogger(__name__)


def _state(part):
    if isinstance(part, torch.Generator):
        return part.get_state()
    if isinstance(part, torch.Tensor):
        return part.detach().cpu().clone()
    return part.state_dict()


def _load(part, state) -> None:
    if isinstance(part, torch.Generator):
        part.set_state(state)
    elif isinstance(part, torch.Tensor):
        with torch.no_grad():
            part.copy_(state)
    else:
        part.load_state_dict(state)


class TrainingSnapshot:
    def __init__(self, path: str | Path | None, every_s: float = 300.0, **parts):
        self.path = Path(path) if path else None
        self.every_s, self.parts = float(every_s), parts
        self.minutes_before = 0.0  # training time spent before the last restart
        self._last = time.monotonic()

    @classmethod
    def for_budget(cls, budget: dict, **parts) -> "TrainingSnapshot":
        """The snapshot a training budget asks for (`snapshot`: path, None when not set; `snapshot_every_s`)."""
        return cls(budget.get("snapshot"), budget.get("snapshot_every_s", 300), **parts)

    def restore(self, history: dict) -> int:
        """Load the snapshot (if any) into the parts and `history`; returns the number of steps done."""
        if self.path is None or not self.path.exists():
            return 0
        try:
            snap = torch.load(self.path, map_location="cpu", weights_only=False)
            if set(snap["parts"]) != set(self.parts):
                raise ValueError(f"parts {sorted(snap['parts'])}, expected {sorted(self.parts)}")
            for name, part in self.parts.items():
                _load(part, snap["parts"][name])
        except Exception as err:  # truncated or from other code: start over, say why
            log.warning("training snapshot %s unusable (%s): training from the start", self.path, err)
            return 0
        history.update({k: list(v) for k, v in snap["history"].items()})
        self.minutes_before = float(snap.get("minutes", 0.0))
        log.info("resuming training from %s at step %d", self.path.name, snap["step"])
        return int(snap["step"])

    def save(self, step: int, history: dict, minutes: float, force: bool = False) -> bool:
        """Write the state after `step` steps when `every_s` seconds have passed since the last write."""
        if self.path is None or (not force and time.monotonic() - self._last < self.every_s):
            return False
        snap = {
            "step": step,
            "minutes": self.minutes_before + minutes,
            "history": history,
            "parts": {name: _state(part) for name, part in self.parts.items()},
        }
        atomic_write(self.path, lambda p: torch.save(snap, p))
        self._last = time.monotonic()
        return True
