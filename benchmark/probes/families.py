"""Stability probes: a named family of perturbations with a level; level 0 is the nominal task.

A probe turns (task, level) into test samples, and may add columns to each row
(`extra`). Methods keep the calibration they got on the nominal task (noise_decay
moves it by the method's own parameter-choice rule, `solving`), so a probe
measures how a method degrades, not how well it could be re-tuned. `label(level)`
names what a level is (rows carry it as `variant`); `adapt` makes data that
depend on the method (worst_case); `incompatible` rejects task classes before a
sweep starts.
"""
from __future__ import annotations

import contextlib
import json
import math
from typing import Iterator

import torch

from regbench.core.hashing import stable_seed
from regbench.datasets.images import ImageSet
from regbench.datasets.task import Sample, Task


class Probe:
    """The task as defined (level 0 only)."""

    def __init__(self, levels=(0,)):
        levels = [float(v) if not float(v).is_integer() else int(v) for v in levels]
        if not levels or levels[0] != 0:
            raise ValueError(f"probe.levels={levels!r} is not allowed; allowed: a list starting with level 0 (the nominal task)")
        self.levels = levels

    def label(self, level) -> str:
        return "nominal" if level == 0 else f"level {level}"

    def samples(self, task: Task, level, n, crop, seed: int, device) -> Iterator[Sample]:
        return task.samples("test", n, crop, seed, device)

    @classmethod
    def incompatible(cls, task_cls: type) -> str | None:
        """Why this probe cannot run tasks of class `task_cls` (checked before a sweep starts), or None."""
        return None

    @contextlib.contextmanager
    def solving(self, method, level):
        """The method's settings while `level` is evaluated (default: as calibrated); yields columns for the rows."""
        yield {}

    def adapt(self, method, task: Task, sample: Sample, level, solver: dict, seed: int, reconstruct) -> Sample:
        """The sample the method is evaluated on, when it depends on the method (default: as it is)."""
        return sample

    def extra(self, method, task: Task, sample: Sample, x_hat: torch.Tensor, solver: dict, seed: int, reconstruct) -> dict:
        """Columns this probe adds to a row (none by default)."""
        return {}


class NoiseSweep(Probe):
    """Level l: the measurement noise std times 2**l (l = -1, 1, 2: x0.5, x2, x4)."""

    def label(self, level) -> str:
        return f"noise x{2.0 ** level:g}"

    def samples(self, task: Task, level, n, crop, seed: int, device) -> Iterator[Sample]:
        return task.samples("test", n, crop, seed, device, noise_scale=2.0**level)


def _nominal_sigma(physics) -> float:
    sigma = getattr(getattr(physics, "noise_model", None), "sigma", None)
    if sigma is None:
        raise ValueError("the noise_model probe needs a task whose physics has Gaussian noise (noise_model.sigma)")
    return float(torch.as_tensor(sigma).flatten()[0])


class NoiseModel(Probe):
    """Data from another noise model than the Gaussian one the methods were calibrated for.

    1 poisson_gaussian: the nominal Gaussian plus a signal-dependent part with std
      `poisson_scale` * sqrt(Ax) (0.02 as in the stability benchmark of Denker et al.);
    2 salt_pepper: the nominal Gaussian, then a fraction `salt_pepper` of the
      measurements set to the min or max of Ax;
    3 uniform: uniform noise with the nominal std (sqrt(3) sigma half-width).
    """

    MODELS = {1: "poisson_gaussian", 2: "salt_pepper", 3: "uniform"}

    def __init__(self, levels=(0, 1, 2, 3), poisson_scale: float = 0.02, salt_pepper: float = 0.05):
        super().__init__(levels)
        bad = [lv for lv in self.levels if lv != 0 and lv not in self.MODELS]
        if bad:
            raise ValueError(f"noise_model levels {bad} are not allowed; allowed: 0 (nominal), " +
                             ", ".join(f"{k} ({v})" for k, v in self.MODELS.items()))
        if not (poisson_scale >= 0 and 0 <= salt_pepper <= 1):
            raise ValueError(f"noise_model: poisson_scale={poisson_scale} must be >= 0 and salt_pepper={salt_pepper} in [0, 1]")
        self.poisson_scale, self.salt_pepper = float(poisson_scale), float(salt_pepper)

    def label(self, level) -> str:
        return "nominal" if level == 0 else self.MODELS[level]

    def noisy(self, clean: torch.Tensor, sigma: float, level, g: torch.Generator) -> torch.Tensor:
        def randn():
            return torch.randn(clean.shape, generator=g, dtype=clean.dtype).to(clean.device)

        if level == 1:
            return clean + sigma * randn() + self.poisson_scale * clean.clamp_min(0).sqrt() * randn()
        if level == 2:
            y = clean + sigma * randn()
            u = torch.rand(clean.shape, generator=g, dtype=clean.dtype).to(clean.device)
            lo, hi = clean.min(), clean.max()
            y = torch.where(u < self.salt_pepper / 2, lo, y)
            return torch.where(u > 1 - self.salt_pepper / 2, hi, y)
        half = math.sqrt(3.0) * sigma
        return clean + (2 * torch.rand(clean.shape, generator=g, dtype=clean.dtype).to(clean.device) - 1) * half

    def samples(self, task: Task, level, n, crop, seed: int, device) -> Iterator[Sample]:
        for s in task.samples("test", n, crop, seed, device):
            if level == 0:
                yield s
                continue
            g = torch.Generator().manual_seed(stable_seed("noise_model", task.name, s.image_id, seed, level))
            y = self.noisy(s.physics.A(s.x), _nominal_sigma(s.physics), level, g)
            yield Sample(s.image_id, s.x, y, s.physics, task.initialize(y, s.physics))


class OutOfDistribution(Probe):
    """Test images from other distributions than the training data; level l uses `sets[l-1]`.

    The task's own operator and noise are applied to them; calibration stays the
    nominal one. Defaults: 1 = scikit-image's bundled images (text, textures,
    microscopy, astronomy), 2 = phantoms.
    """

    def __init__(self, sets: list, levels=None):
        if not sets:
            raise ValueError("ood: sets must name at least one image set")
        self.sets: list[ImageSet] = list(sets)
        super().__init__(levels if levels is not None else range(len(self.sets) + 1))
        if any(not float(lv).is_integer() or not 0 <= lv <= len(self.sets) for lv in self.levels):
            raise ValueError(f"ood levels {self.levels} must be integers in 0..{len(self.sets)} (one per image set)")

    def label(self, level) -> str:
        return "nominal" if level == 0 else self.sets[level - 1].name

    def samples(self, task: Task, level, n, crop, seed: int, device) -> Iterator[Sample]:
        if level == 0:
            yield from task.samples("test", n, crop, seed, device)
            return
        images = self.sets[level - 1]
        for image_id in images.ids()[:n] if n else images.ids():
            x = task.foreign_image(images.load(image_id), crop).unsqueeze(0).to(device)
            y, physics, x0 = task.measure(x, "ood", f"{images.name}/{image_id}", seed)
            yield Sample(f"{images.name}/{image_id}", x, y, physics, x0)


class Sensitivity(Probe):
    """Per-pixel std of the reconstruction over K noise realizations of the same image.

    Adds `sensitivity_std` (mean over pixels of the per-pixel std) and
    `sensitivity_max` to each row; the row's PSNR is that of the first realization.
    """

    def __init__(self, realizations: int = 8, levels=(0,)):
        super().__init__(levels)
        if int(realizations) < 2:
            raise ValueError(f"sensitivity.realizations={realizations} is not allowed; allowed: an integer >= 2")
        self.realizations = int(realizations)

    def label(self, level) -> str:
        return f"{self.realizations} noise realizations"

    def extra(self, method, task: Task, sample: Sample, x_hat, solver: dict, seed: int, reconstruct) -> dict:
        stack = [x_hat]
        for k in range(1, self.realizations):
            y, physics, x0 = task.measure(sample.x, "test", sample.image_id, stable_seed("sensitivity", seed, k))
            x_k, _ = reconstruct(Sample(sample.image_id, sample.x, y, physics, x0))
            if x_k is not None:  # a failed realization is left out (and the count says so)
                stack.append(x_k)
        std = torch.stack(stack).std(dim=0)
        return {"sensitivity_std": float(std.mean()), "sensitivity_max": float(std.max()), "realizations": len(stack)}


class NoiseDecay(Probe):
    """Level l: noise std times 2**-l, the calibrated parameters moved by the method's parameter-choice rule
    (`Hyper.noise_power` p: value x (2**-l)**p; the variational lambda ~ sigma, DEAL's mask sigma ~ sigma;
    PnP and the samplers read the noise level from the physics). The convergent-regularization check: the
    error should go to 0 with the noise. Rows carry the values used (`hyper_used`)."""

    def __init__(self, levels=(0, 1, 2, 3)):
        super().__init__(levels)

    def label(self, level) -> str:
        return f"noise x{2.0 ** -level:g}, rule"

    def samples(self, task: Task, level, n, crop, seed: int, device) -> Iterator[Sample]:
        return task.samples("test", n, crop, seed, device, noise_scale=2.0**-level)

    @contextlib.contextmanager
    def solving(self, method, level):
        saved = dict(method.hp)
        for k, h in method.hyperparameters.items():
            if getattr(h, "noise_power", 0.0):
                method.hp[k] = saved[k] * (2.0**-level) ** h.noise_power
        try:
            yield {"hyper_used": json.dumps(method.hp, sort_keys=True)}
        finally:
            method.hp.clear()
            method.hp.update(saved)


class OperatorMismatch(Probe):
    """Data from a perturbed operator, reconstruction with the nominal one (and the nominal noise).

    Level l (the task's `mismatch`): CT every angle jittered by U[-0.7, 0.7] x |l| degrees and the
    detector shifted by l/2 pixels; deblurring the kernel width x (1 + 0.2 l); MRI the sampled
    k-space columns shifted by l lines. Tasks without a mismatch model (denoising, super-resolution,
    inpainting) are rejected before a sweep starts.
    """

    def __init__(self, levels=(0, -1, 1, 2)):
        super().__init__(levels)

    @classmethod
    def incompatible(cls, task_cls: type) -> str | None:
        if getattr(task_cls, "mismatch", None):
            return None
        return (f"probe operator_mismatch needs a task with an operator-mismatch model; {task_cls.__name__} has none "
                "(tasks with one: ct_*, deblur_*, mri_*)")

    def label(self, level) -> str:
        return "nominal" if level == 0 else f"mismatch {level:+g}"

    def samples(self, task: Task, level, n, crop, seed: int, device) -> Iterator[Sample]:
        if level == 0:
            yield from task.samples("test", n, crop, seed, device)
            return
        why = self.incompatible(type(task))
        if why:
            raise ValueError(why)
        ids = task.test.ids()
        for image_id in ids[:n] if n else ids:
            x = task.image("test", image_id, crop).unsqueeze(0).to(device)
            y, physics, x0 = task.measure(x, "test", image_id, seed, mismatch=level)
            yield Sample(image_id, x, y, physics, x0, task.max_pixel)


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

    def adapt(self, method, task, sample, level, solver, seed, reconstruct) -> Sample:
        if level == 0:
            return sample
        if sample.image_id not in self._ref:
            self._ref[sample.image_id] = reconstruct(sample)[0]
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
            return Sample(sample.image_id, sample.x, y, sample.physics, task.initialize(y, sample.physics),
                          sample.max_pixel, {"x_ref": x_ref, "delta_norm": radius, **meta})

        def amplification(delta) -> float:
            x = reconstruct(perturbed(delta))[0]
            return float("nan") if x is None else _norm(x - x_ref) / radius

        start = random_delta()
        meta = {"random_amplification": amplification(start)}
        try:
            delta = self.ascend(method, task, sample, x_ref, start, radius, solver)
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

    def ascend(self, method, task, sample, x_ref, delta, radius: float, solver: dict):
        """Projected gradient ascent through the differentiable reconstruction; None when there is none."""
        for _ in range(self.steps):
            d = delta.detach().requires_grad_(True)
            y = sample.y + d
            x = method.differentiable_reconstruct(y, sample.physics, task.initialize(y, sample.physics), x_ref,
                                                  {**solver, "unroll": self.unroll})
            if x is None or not x.requires_grad:
                return None
            (grad,) = torch.autograd.grad((x - x_ref).pow(2).sum(), d)
            if not bool(torch.isfinite(grad).all()) or _norm(grad) == 0:
                break
            delta = grad * (radius / _norm(grad))
        return delta.detach()

    def extra(self, method, task, sample, x_hat, solver, seed, reconstruct) -> dict:
        meta = sample.meta
        if "x_ref" not in meta:
            return {"amplification": float("nan"), "random_amplification": float("nan"), "attack": ""}
        return {"amplification": _norm(x_hat - meta["x_ref"]) / meta["delta_norm"],
                "random_amplification": meta["random_amplification"], "attack": meta["attack"]}
