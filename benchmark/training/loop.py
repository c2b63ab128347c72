"""The one training loop: optimizer step, schedule, resumable snapshot, progress bar and history.

A training scheme gives the loss of one step (`step(k) -> metrics`, having called
`backward()` on what it optimizes); the loop applies the optimizer and the schedule,
records the metrics, shows them on the progress bar and snapshots the whole state
every few minutes (`TrainingSnapshot`), so a run that dies resumes where it stopped,
with the same random draws.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Iterable

import torch
from tqdm.auto import tqdm

from regbench.training.snapshots import TrainingSnapshot

HISTORY_POINTS = 200  # the training log keeps about this many points per curve


def psnr_of_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error on [0, 1] images."""
    return -10 * math.log10(max(mse, 1e-12))


class TrainingLoop:
    def __init__(
        self,
        name: str,
        steps: int,
        optimizer: torch.optim.Optimizer,
        scheduler,
        budget: dict,
        progress: bool = True,
        show: Iterable[str] = ("psnr",),
        **parts,
    ):
        """`parts`: everything else a resumed run needs back (the model, random generators, the patch
        sampler, loose parameters); `budget`: where to snapshot (`snapshot`, `snapshot_every_s`);
        `show`: the metrics on the progress bar."""
        self.name, self.steps, self.optimizer, self.scheduler = name, int(steps), optimizer, scheduler
        self.progress, self.show = progress, tuple(show)
        self.snapshot = TrainingSnapshot.for_budget(budget, opt=optimizer, sched=scheduler, **parts)
        self.history: dict[str, list] = {}  # every step's metrics (the log keeps a thinned copy)

    def run(self, step: Callable[[int], dict]) -> dict:
        """Run the steps from where the last snapshot left off (or the first) to the end; returns the
        training log (minutes, steps, history thinned to about HISTORY_POINTS points per curve)."""
        start = self.snapshot.restore(self.history)
        t0 = time.perf_counter()
        bar = tqdm(
            range(start, self.steps),
            desc=f"train {self.name}",
            disable=not self.progress,
            mininterval=5,
            initial=start,
            total=self.steps,
        )
        for k in bar:
            metrics = step(k)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            for key, value in metrics.items():
                self.history.setdefault(key, []).append(value)
            shown = {key: f"{metrics[key]:.4g}" for key in self.show if key in metrics}
            if shown:
                bar.set_postfix(shown, refresh=False)
            self.snapshot.save(k + 1, self.history, (time.perf_counter() - t0) / 60)
        thin = max(1, self.steps // HISTORY_POINTS)
        return {
            "minutes": self.snapshot.minutes_before + (time.perf_counter() - t0) / 60,
            "steps": self.steps,
            "history": {key: v[::thin] for key, v in self.history.items()},
        }
