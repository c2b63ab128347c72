"""What a training scheme is: a loss and a procedure over the shared training loop, applied to
any method that has what the scheme needs.

A scheme declares its needs by name (`NEEDS`: the capability and how to tell whether a method
has it), so an incompatible method x scheme pair fails before any work starts, in one line
that says what is missing. The scheme never holds weights: `train` updates the method it is
given and returns the training log.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from hydra.utils import get_class
from torch.nn.utils import parametrize

from regbench.core.registry import training_yaml


def _has_smooth_regularizer(method) -> bool:
    return bool(getattr(method, "smooth_regularizer", False)) and callable(getattr(method, "regularizer", None))


NEEDS: dict[str, tuple[str, Callable[[torch.nn.Module], bool]]] = {
    "gradient": (
        "a smooth regularizer whose gradient is differentiable in its parameters (VariationalMethod.regularizer)",
        _has_smooth_regularizer,
    ),
    "parameters": ("trainable parameters", lambda m: any(p.requires_grad for p in m.parameters())),
    "denoiser": (
        "a noise-conditional denoiser to train (a `denoiser` submodule called as denoiser(x, sigma))",
        lambda m: isinstance(getattr(m, "denoiser", None), torch.nn.Module),
    ),
    "edm": (
        "EDM's preconditioning coefficients (denoiser.coefficients(sigma), denoiser.sigma_floor)",
        lambda m: callable(getattr(getattr(m, "denoiser", None), "coefficients", None)),
    ),
    "fit": (
        "a training procedure of its own (a `fit(patches, settings, progress)` method)",
        lambda m: callable(getattr(m, "fit", None)),
    ),
    "fixed_point": (
        "a fixed-point map with an equilibrium step (denoising_fixed_point, equilibrium_step: DEAL)",
        lambda m: (
            callable(getattr(m, "denoising_fixed_point", None)) and callable(getattr(m, "equilibrium_step", None))
        ),
    ),
}


class Scheme:
    """A training procedure: `needs` (keys of NEEDS), `train(method, patches, settings, progress, label)`."""

    name: str = ""
    needs: tuple[str, ...] = ()

    def incompatibility(self, method) -> str | None:
        """Why this scheme cannot train `method` (what it lacks), or None."""
        missing = [NEEDS[need][0] for need in self.needs if not NEEDS[need][1](method)]
        if not missing:
            return None
        return f"training scheme {self.name} needs {'; '.join(missing)}: {type(method).__name__} has none"

    def train(self, method, patches, settings: dict, progress: bool = True, label: str = "") -> dict:
        """Train `method` on patches from `patches` with `settings` (the scheme's and the method's
        settings, the profile's budget, `seed` and where to snapshot); returns the training log."""
        raise NotImplementedError


def load_scheme(name: str) -> Scheme:
    """The scheme configs/training/<name>.yaml names (its `_target_` class)."""
    cfg = training_yaml(name)
    scheme = get_class(cfg._target_)()
    scheme.name = name
    return scheme


def scheme_for(method_name: str, spec: dict, method) -> Scheme:
    """The scheme that trains `spec` (a checkpoint spec), checked against `method`: an incompatible
    pair is a ValueError that says in one line what the method lacks."""
    scheme = load_scheme(spec["training"])
    why = scheme.incompatibility(method)
    if why:
        raise ValueError(f"method {method_name} x training {spec['training']}: {why}")
    return scheme


def seeded_init(module: torch.nn.Module, seed: int) -> None:
    """Redraw the weights (and biases) of every convolution and linear layer from PyTorch's
    default init (kaiming-uniform, a=sqrt(5)) with a seeded generator: training is then
    reproducible whatever the global RNG did before the model was built. Other
    parameters (e.g. spline coefficients) keep their deterministic init."""
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for layer in module.modules():
            if not isinstance(layer, (torch.nn.modules.conv._ConvNd, torch.nn.Linear)):
                continue
            weight = (
                layer.parametrizations.weight.original if parametrize.is_parametrized(layer, "weight") else layer.weight
            )
            fresh = torch.empty(weight.shape, dtype=weight.dtype)
            torch.nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=g)
            weight.copy_(fresh)
            if getattr(layer, "bias", None) is not None:
                fan_in = (
                    fresh[0].numel() if isinstance(layer, torch.nn.Linear) else fresh.shape[1] * fresh[0, 0].numel()
                )
                bound = 1.0 / math.sqrt(fan_in)
                layer.bias.copy_(torch.empty(layer.bias.shape).uniform_(-bound, bound, generator=g))


class MethodFit(Scheme):
    """The method's own training procedure, `method.fit(patches, settings, progress)`: a method with a
    training of its own (one module, one YAML) needs no scheme module of its own."""

    needs = ("fit",)

    def train(self, method, patches, settings: dict, progress: bool = True, label: str = "") -> dict:
        return method.fit(patches, settings, progress)
