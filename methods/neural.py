"""Regularizers given as a network's value: R(x) = network(x), its gradient by autograd.

The zoo's networks (ICNN, TDV, LSR, CNN critics, NETT) have no cheap bound on the Lipschitz
constant of their gradient, so `reg_lipschitz` is None and the shared solver finds its step by
line search (regbench.solvers.apg). A subclass gives `energy(x)`, one value per image; the
training schemes of smooth regularizers (bilevel, score, adversarial) then apply to it unchanged:
with autograd on, `reg_grad` keeps the graph, so the gradient is differentiable in the network's
parameters (the hypergradient, the gradient penalty) and in x (Hessian-vector products).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from regbench.methods.base import VariationalMethod


def autograd_gradient(energy: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """grad of sum(energy(x)) in x: with the graph kept when grad mode is on (training), dropped in solves."""
    differentiable = torch.is_grad_enabled()
    with torch.enable_grad():
        point = x if differentiable and x.requires_grad else x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(point).sum(), point, create_graph=differentiable)
    return grad


class NeuralRegularizer(VariationalMethod):
    trainable = True

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """R(x): one value per image of the batch, shape (B,)."""
        raise NotImplementedError

    def reg_energy(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy(x)

    def reg_grad(self, x: torch.Tensor) -> torch.Tensor:
        return autograd_gradient(self.energy, x)

    def reg_lipschitz(self) -> Optional[float]:
        return None

    def differentiable_reconstruct(self, y, physics, x0, x_ref, hyper, options) -> Optional[torch.Tensor]:
        """No unrolled path without a step bound: the worst-case probe searches at random."""
        return None
