"""A linear ODL operator as a torch autograd Function and a deepinv LinearPhysics.

Why not `odl.contrib.torch.OperatorModule`: its backward applies ODL's adjoint,
which is the adjoint for ODL's *weighted* inner products (cell volumes of the
image and sinogram grids), not the transpose torch's autograd and deepinv's L2
fidelity need. Here the transpose is ODL's adjoint times domain.cell_volume /
range.cell_volume, so <A x, y> = <x, A^T y> in plain Euclidean sums (tested).

The operator works on NumPy arrays (ODL's astra/skimage backends), so tensors
go through the CPU; batches and channels are looped over.
"""

from __future__ import annotations

import numpy as np
import torch
from deepinv.physics import LinearPhysics


class OdlLinear:
    """x -> scale * op(x) and its Euclidean transpose, on NumPy arrays of the operator's shapes."""

    def __init__(self, op, scale: float = 1.0):
        if not op.is_linear:
            raise ValueError(f"OdlLinear needs a linear ODL operator, got {op!r}")
        self.op = op
        self.scale = float(scale)
        self.weight_ratio = float(op.domain.cell_volume / op.range.cell_volume)
        self.in_shape, self.out_shape = tuple(op.domain.shape), tuple(op.range.shape)

    def forward_np(self, a: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(self.op(a).asarray(), dtype=np.float32)

    def transpose_np(self, b: np.ndarray) -> np.ndarray:
        return (self.scale * self.weight_ratio) * np.asarray(self.op.adjoint(b).asarray(), dtype=np.float32)

    def apply(self, t: torch.Tensor, transpose: bool = False) -> torch.Tensor:
        """Apply to a (..., *in_shape) tensor (or the transpose to (..., *out_shape))."""
        src, dst = (self.out_shape, self.in_shape) if transpose else (self.in_shape, self.out_shape)
        if tuple(t.shape[-len(src) :]) != src:
            raise ValueError(
                f"ODL operator expects a tensor of shape (..., {', '.join(map(str, src))}), got {tuple(t.shape)}"
            )
        fn = self.transpose_np if transpose else self.forward_np
        lead = t.shape[: t.dim() - len(src)]
        flat = t.detach().reshape(-1, *src).to("cpu", torch.float32).numpy()
        out = np.stack([fn(a) for a in flat]) if len(flat) else np.zeros((0, *dst), np.float32)
        return torch.from_numpy(out).reshape(*lead, *dst).to(device=t.device, dtype=t.dtype)


class OdlFunction(torch.autograd.Function):
    """Autograd through a linear ODL operator: the backward of A is A^T and vice versa."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, operator: OdlLinear, transpose: bool):
        ctx.operator, ctx.transpose = operator, transpose
        return operator.apply(x, transpose)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return ctx.operator.apply(grad, not ctx.transpose), None, None


class OdlPhysics(LinearPhysics):
    """deepinv LinearPhysics of an OdlLinear: A, A_adjoint (autograd-capable), and an
    optional ODL pseudo-inverse (e.g. FBP) as A_dagger."""

    def __init__(self, operator: OdlLinear, pseudo_inverse=None, **kwargs):
        super().__init__(**kwargs)
        self.operator = operator
        self.pseudo_inverse = pseudo_inverse  # an OdlLinear mapping measurements to images, or None

    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return OdlFunction.apply(x, self.operator, False)

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        return OdlFunction.apply(y, self.operator, True)

    def A_dagger(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.pseudo_inverse is None:
            return super().A_dagger(y, **kwargs)
        return self.pseudo_inverse.apply(y)
