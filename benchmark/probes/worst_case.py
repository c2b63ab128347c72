"""Probe worst_case: adversarial measurement perturbations of a given relative size."""

from __future__ import annotations

from dataclasses import replace

import torch

from regbench.core.hashing import stable_seed
from regbench.datasets.task import Sample
from regbench.evaluation.reconstruct import Reconstruction
from regbench.probes.base import Probe


def _norm(t: torch.Tensor) -> float:
    return float(t.detach().flatten().norm())


class WorstCase(Probe):
    """Level eps: y + delta with ||delta|| = eps ||y||, delta maximizing ||x(y + delta) - x(y)||.

    Found by `steps` of projected gradient ascent from a seeded random delta: delta <- eps ||y|| g / ||g||
    with g the gradient of ||x(y + delta) - x(y)||^2 (power iteration when the response is linear),
    through the method's `differentiable_reconstruct` (variational: `unroll` proximal-gradient steps with
    autograd, warm-started at the converged x(y); PnP: its HQS iterations). Methods without one (DEAL's
    fixed point, samplers) get a gradient-free estimate: the worst of `steps` + 1 seeded random deltas.
    Columns: `amplification` ||x(y + delta) - x(y)|| / ||delta|| and `random_amplification` (the seeded
    random delta), both from converged solves, and `attack` (gradient or random search).
    """

    def __init__(self, levels=(0, 0.01, 0.03), steps: int = 3, unroll: int = 20):
        super().__init__(levels)
        if any(lv < 0 for lv in self.levels) or int(steps) < 1 or int(unroll) < 1:
            raise ValueError(f"worst_case: levels {self.levels} must be >= 0, steps={steps} and unroll={unroll} >= 1")
        self.steps, self.unroll = int(steps), int(unroll)
        self._ref: dict = {}  # image id -> x(y), shared by the levels

    def label(self, level) -> str:
        return "nominal" if level == 0 else f"eps {level:g}"

    def adapt(self, recon: Reconstruction, task, sample, level, seed) -> Sample:
        if level == 0:
            return sample
        if sample.image_id not in self._ref:
            self._ref[sample.image_id] = recon.guarded(sample)[0]
        x_ref = self._ref[sample.image_id]
        if x_ref is None:  # the nominal solve failed: nothing to attack
            return sample
        radius = level * _norm(sample.y)
        g = torch.Generator().manual_seed(stable_seed("worst_case", task.name, sample.image_id, seed, level))

        def random_delta():
            d = torch.randn(sample.y.shape, generator=g, dtype=sample.y.dtype).to(sample.y.device)
            return d * (radius / _norm(d))

        def perturbed(delta, **meta):
            y = sample.y + delta
            return replace(
                sample, y=y, x0=task.initialize(y, sample.physics), meta={"x_ref": x_ref, "delta_norm": radius, **meta}
            )

        def amplification(delta) -> float:
            x = recon.guarded(perturbed(delta))[0]
            return float("nan") if x is None else _norm(x - x_ref) / radius

        start = random_delta()
        meta = {"random_amplification": amplification(start)}
        try:
            delta = self.ascend(recon.with_options(unroll=self.unroll), task, sample, x_ref, start, radius)
        except (RuntimeError, NotImplementedError) as err:  # autograd cannot go through: search at random
            delta, meta["attack_error"] = None, f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
        if delta is not None:
            return perturbed(delta, attack="gradient", **meta)
        best, best_amp = start, meta["random_amplification"]
        for _ in range(self.steps):
            d = random_delta()
            amp = amplification(d)
            if amp > best_amp:
                best, best_amp = d, amp
        note = f" (gradient failed: {meta.pop('attack_error')})" if "attack_error" in meta else ""
        return perturbed(best, attack="random search" + note, **meta)

    def ascend(self, recon: Reconstruction, task, sample, x_ref, delta, radius: float):
        """Projected gradient ascent through the differentiable reconstruction; None when there is none."""
        for _ in range(self.steps):
            d = delta.detach().requires_grad_(True)
            y = sample.y + d
            x = recon.differentiable(replace(sample, y=y, x0=task.initialize(y, sample.physics)), x_ref)
            if x is None or not x.requires_grad:
                return None
            (grad,) = torch.autograd.grad((x - x_ref).pow(2).sum(), d)
            if not bool(torch.isfinite(grad).all()) or _norm(grad) == 0:
                break
            delta = grad * (radius / _norm(grad))
        return delta.detach()

    def extra(self, recon, task, sample, x_hat, seed) -> dict:
        meta = sample.meta
        if "x_ref" not in meta:
            return {"amplification": float("nan"), "random_amplification": float("nan"), "attack": ""}
        return {
            "amplification": _norm(x_hat - meta["x_ref"]) / meta["delta_norm"],
            "random_amplification": meta["random_amplification"],
            "attack": meta["attack"],
        }
