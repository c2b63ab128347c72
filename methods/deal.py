"""DEAL: Deep Attentive Least Squares (Pourya et al. 2025), deepinv's network trained by regbench.

    x = argmin_z 1/2 ||A z - y||^2 + lam/2 sum_c || m_c(x) * (W z)_c ||^2

W is a learned multi-convolution (1 -> 4 -> 8 -> C channels, k x k kernels,
normalized by its spectral norm) and m(x) in [0.01, 1] are attention masks
computed from the reconstruction itself by a second small network, so the
solution is a fixed point: alternate masks from the current x with a
conjugate-gradient solve of the (then linear) least-squares problem.

The network is deepinv's (`deepinv.models.DEAL(pretrained=None).model`, the
official architecture; never downloaded). Only its widths can be reduced
(`channels`, `kernel_size`: the cpu profile uses fewer output channels); at
the paper sizes the state dict is exactly deepinv's.

Training (the paper's denoising setup): BSD400 patches with noise levels drawn
uniformly in [`sigma_min`, `sigma_max`] (0-255 scale); lambda(sigma) and the
mask scaling are learned splines of the noise level. The mask/CG refinement is
treated as a fixed point (deep equilibrium), not unrolled: it runs without
gradients to (near) convergence, then one differentiable step
    x = y - lam W^T m^2 W x*      (= x* at the fixed point)
gives the exact gradient of the last least-squares solve, with the mask held at
its fixed-point input (gradients reach the mask network's parameters, W and
lambda; the mask's dependence on x is not differentiated). The backward pass
applies (I + lam W^T m^2 W)^-1 to the incoming gradient by CG, as deepinv's
training mode does (whose own hook unpacks a single tensor and fails for batch
sizes other than 2, so the step is written here).

Reconstruction applies, by default in every profile (`reconstruct.<profile>.fixed_point: as_trained` in
its YAML), the map training fitted: the budget's mask updates from the initializer, then the precise solve.
The cpu training truncates the fixed point at 6 updates, and its checkpoint scores higher on that map than
at the converged fixed point (`fixed_point: converged`, Anderson-accelerated): 28.65 against 28.54 dB
on BSD68. Reconstruction calibrates per task `lam` (a factor on the learned lambda at
`sigma`, times ||A||^2 so that operators of any scale start alike) and `sigma`,
the noise level the masks are computed for.
"""

from __future__ import annotations

import torch
from deepinv.models import DEAL as DeepinvDEAL
from deepinv.models.deal import LinearSpline, MultiConv2d
from deepinv.optim.linear import conjugate_gradient

from regbench.methods.base import Hyper, Method, SolveReport, data_lipschitz, operator_of

PAPER_CHANNELS, PAPER_KERNEL = (1, 4, 8, 128), 9
ANDERSON_DEPTH = 5  # reconstruction's outer iteration (not a model setting: changing it never retrains)


def anderson_mix(xs: list[torch.Tensor], gs: list[torch.Tensor]) -> torch.Tensor:
    """Anderson (type II) extrapolation from iterates xs and their images gs = G(xs): the combination of
    the gs whose residuals g_i - x_i combine (weights summing to one) to the least norm. A regularized
    m x m normal equation (m = len(xs) - 1), so it runs alike on every device; nonfinite -> the last image."""
    if len(xs) < 2:
        return gs[-1]
    f = torch.stack([g - x for g, x in zip(gs, xs)], 1).double()
    g = torch.stack(gs, 1).double()
    df, dg = f[:, 1:] - f[:, :-1], g[:, 1:] - g[:, :-1]
    gram = df.T @ df
    gram = gram + 1e-10 * gram.diagonal().sum().clamp_min(1e-30) * torch.eye(
        gram.shape[0], dtype=gram.dtype, device=gram.device
    )
    gamma = torch.linalg.solve(gram, df.T @ f[:, -1:])
    mixed = (g[:, -1:] - dg @ gamma).squeeze(1).to(gs[-1].dtype)
    return mixed if bool(torch.isfinite(mixed).all()) else gs[-1]


class KnotExactLinearSpline(LinearSpline):
    """deepinv's LinearSpline, with each input's segment chosen as in exact arithmetic.

    deepinv clamps x to [x_min, x_max - step] and floors (x - x_min) / step: beyond the last knot the
    segment then depends on how that quotient rounds (the mask splines have step 0.1: float32 on the CPU
    gives the last segment, float64 and CUDA the one before), and with unclamped extrapolation the two
    differ a lot (an activation of 4.3: 5.02 against 3.20). That made DEAL read 0.07 dB lower on CUDA
    than on the CPU on a BSD68 image. Here the segment is floor((x - x_min) / step) clamped
    to [0, num_knots - 2]: the exact-arithmetic choice, bit-identical to deepinv's wherever its float32 CPU
    rounding agrees with it (every checkpoint regbench trained), on any device and dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.num_knots == 1:
            return super().forward(x)
        shape = x.shape
        x = x.view(shape[0], self.num_activations, shape[1] // self.num_activations, *shape[2:])
        step = (self.x_max - self.x_min) / (self.num_knots - 1)
        position = (x - self.x_min) / step
        segment = torch.floor(position).clamp(0, self.num_knots - 2)
        frac = position - segment
        index = (self.zero_knot_indexes.view(1, -1, *([1] * (x.dim() - 2))) + segment).long()
        coefficients = self.projected_coefficients.view(-1)
        return (coefficients[index + 1] * frac + coefficients[index] * (1 - frac)).view(shape)


def deal_network(channels=PAPER_CHANNELS, kernel_size: int = PAPER_KERNEL) -> torch.nn.Module:
    """deepinv's grayscale DEAL network, with the filter bank and mask widths given (its splines
    evaluated by `KnotExactLinearSpline`: same parameters and state dict)."""
    net = _deal_network(channels, kernel_size)
    for module in net.modules():
        if type(module) is LinearSpline:
            module.__class__ = KnotExactLinearSpline
    return net


def _deal_network(channels, kernel_size: int) -> torch.nn.Module:
    net = DeepinvDEAL(pretrained=None, color=False, device="cpu").model
    channels = tuple(int(c) for c in channels)
    if (channels, int(kernel_size)) == (PAPER_CHANNELS, PAPER_KERNEL):
        return net
    if len(channels) < 2 or channels[0] != 1:
        raise ValueError(f"DEAL channels={list(channels)}: must start with 1 (grayscale) and have >= 2 entries")
    c, k = channels[-1], int(kernel_size)
    net.kernel_size, net.conv_pad, net.last_c = k, k // 2, c
    net.W1 = MultiConv2d(list(channels), [k] * (len(channels) - 1))
    net.M1 = MultiConv2d(list(channels), [k] * (len(channels) - 1))
    net.M2 = torch.nn.Conv2d(c, c, kernel_size=3, padding=1, bias=False)
    net.M3 = torch.nn.Conv2d(c, c, kernel_size=3, padding=1, bias=False)
    old = net.spline_scaling
    net.spline_scaling = LinearSpline(
        num_activations=c,
        num_knots=old.num_knots,
        x_min=float(old.x_min),
        x_max=float(old.x_max),
        init=old.init,
        clamp=old.clamp,
    )
    return net


class DEAL(Method):
    family = "variational"
    energy_based = False  # a fixed point with a convergence check (relative change), but no energy to evaluate
    trainable = True
    hyperparameters = {
        "sigma": Hyper(
            25.0, span=4.0, calibrate=True, bounds=(1.0, 50.0), noise_power=1.0
        ),  # mask noise level, 0-255 scale
        "lam": Hyper(1.0, span=10.0, calibrate=True),  # factor on the learned lambda(sigma)
    }

    def __init__(
        self,
        channels=PAPER_CHANNELS,
        kernel_size: int = PAPER_KERNEL,
        outer_iters: int = 30,
        cg_iters: int = 50,
        tol: float = 1e-4,
        cg_tol: float = 1e-4,
        **hyper: float,
    ):
        super().__init__(**hyper)
        self.net = deal_network(channels, kernel_size)
        self.outer_iters, self.cg_iters, self.tol, self.cg_tol = (
            int(outer_iters),
            int(cg_iters),
            float(tol),
            float(cg_tol),
        )

    # -- the model --------------------------------------------------------------
    def _condition(self, sigma: torch.Tensor) -> torch.Tensor:
        """Normalize W, set the mask scaling for noise level(s) sigma (0-255, shape (B,1,1,1));
        returns lambda(sigma)."""
        W = self.net.W1
        W.L = W.L.detach().clone()  # the norm buffer is rewritten in place: cut it from the last step's graph
        W.spectral_norm()
        self.net.cal_scaling(sigma)
        return self.net.spline_lambda(sigma)

    def normal_operator(self, mask: torch.Tensor, lam: torch.Tensor, gram=lambda v: v):
        """v -> A^T A v + lam W^T (mask^2 * W v)."""
        W = self.net.W1
        return lambda v: gram(v) + lam * W.transpose(mask * (mask * W(v)))

    def fixed_point(
        self,
        rhs,
        x,
        lam,
        gram,
        iters: int,
        cg_iters: int,
        tol: float,
        cg_tol: float,
        inexact: bool = False,
        depth: int = 0,
    ):
        """Alternate masks from x and CG solves; returns (x, mask input, outer iterations, last relative change).

        Reconstruction speeds it up (training keeps the plain iteration its checkpoints were trained with):
        `inexact` solves while the masks still move (CG tolerance a tenth of the last relative change, at most
        1e-2, never below `cg_tol`); `depth` > 0: Anderson acceleration of the outer map x -> solve(mask(x)) over
        the last `depth` iterates, restarted whenever the relative change grows. Measured on three 256 px BSD68
        crops (cpu checkpoint, one thread, busy machine): exact solves 22/25/- outer iterations and 228/237/-
        operator applications; inexact solves 22/25/21 and 172/191/156 (33/34/28 s); + Anderson (depth 5)
        14/16/14 iterations (15/16/14 s), PSNR within 0.003 dB."""
        rel, k, prev = float("inf"), 0, x
        xs, gs = [], []
        for k in range(1, iters + 1):
            prev, last = x, rel
            mask = self.net.cal_mask(x)
            solve_tol = max(cg_tol, min(1e-2, 0.1 * rel)) if inexact else cg_tol
            x = conjugate_gradient(self.normal_operator(mask, lam, gram), rhs, init=x, max_iter=cg_iters, tol=solve_tol)
            rel = float(torch.linalg.vector_norm(x - prev) / torch.linalg.vector_norm(prev).clamp_min(1e-12))
            if rel < tol:
                break
            if depth > 0:
                if rel > last:  # the extrapolation did not pay (fast plain convergence, inexact solves): restart
                    xs, gs = [], []
                xs, gs = (xs + [prev.flatten()])[-depth:], (gs + [x.flatten()])[-depth:]
                x = anderson_mix(xs, gs).view_as(x)
        return x, prev, k, rel

    def trained_map(self, rhs, x0, lam, gram, iters: int, cg_iters: int, tol: float, cg_tol: float):
        """The map training fits: at most `iters` plain mask updates from x0 (each followed by a CG solve), then
        one more, precise solve with the mask of the last iterate. Returns (x, its mask input, mask updates)."""
        x, _, k, _ = self.fixed_point(rhs, x0, lam, gram, iters, cg_iters, tol, cg_tol)
        mask_input = x
        x = conjugate_gradient(
            self.normal_operator(self.net.cal_mask(mask_input), lam, gram),
            rhs,
            init=x,
            max_iter=cg_iters,
            tol=cg_tol * 0.1,
        )
        return x, mask_input, k

    # -- reconstruction -----------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, y, physics, x0, hyper, options) -> tuple[torch.Tensor, SolveReport]:
        """options.method["fixed_point"]: "converged" (default) iterates to the fixed point (tol, at most
        `outer_iters` mask updates, accelerated); "as_trained" applies the map the checkpoint was trained on
        (`trained_map`, with options.method["outer_iters"] updates: the training budget's), which a truncated
        training fits better. options.method["cg_tol"]: the CG tolerance of the solves (default the model's;
        the last solve's is a tenth)."""
        own = options.method
        sigma = torch.full((x0.shape[0], 1, 1, 1), hyper["sigma"], device=x0.device, dtype=x0.dtype)
        lam = hyper["lam"] * self._condition(sigma) * data_lipschitz(operator_of(options, physics), physics, x0)
        iters = int(own.get("outer_iters", self.outer_iters))
        cg_tol = float(own.get("cg_tol", self.cg_tol))
        rhs, gram = physics.A_adjoint(y), (lambda v: physics.A_adjoint(physics.A(v)))
        mode = own.get("fixed_point", "converged")
        if mode == "as_trained":  # a fixed number of updates, like PnP's iterations: no convergence to report
            x, _, k = self.trained_map(rhs, x0, lam, gram, iters, self.cg_iters, self.tol, cg_tol)
            return x, SolveReport(iterations=k)
        if mode != "converged":
            raise ValueError(f"DEAL: fixed_point={mode!r}; expected 'converged' or 'as_trained'")
        x, _, k, rel = self.fixed_point(
            rhs, x0, lam, gram, iters, self.cg_iters, self.tol, cg_tol, inexact=True, depth=ANDERSON_DEPTH
        )
        return x, SolveReport(iterations=k, converged=rel < self.tol, rel_change=rel)

    # -- what the deal_unrolled training scheme uses -------------------------------
    def parameter_groups(self, lr: float, settings: dict) -> list[dict]:
        """Adam groups: the splines (lambda(sigma) lives on a 0-50 scale) at `spline_lr_factor` x lr."""
        splines = [*self.net.spline_lambda.parameters(), *self.net.spline_scaling.parameters()]
        rest = [p for p in self.net.parameters() if all(p is not q for q in splines)]
        return [
            {"params": rest, "lr": lr},
            {"params": splines, "lr": lr * float(settings.get("spline_lr_factor", 10.0))},
        ]

    def denoising_fixed_point(self, y, sigma, iters: int, cg_iters: int, tol: float, cg_tol: float):
        """The trained map on denoising measurements y at noise levels sigma (0-255, shape (B,1,1,1)),
        from y: (x, its mask input, mask updates)."""
        lam = self._condition(sigma)
        return self.trained_map(y, y, lam, lambda v: v, iters, cg_iters, tol, cg_tol)

    def finish_training(self) -> None:
        """The norm buffer of the final weights (the last step's is one update old)."""
        with torch.no_grad():
            self._condition(torch.full((1, 1, 1, 1), self.hp["sigma"], device=self.net.W1.L.device))

    def equilibrium_step(self, y, x_star, mask_input, sigma, cg_iters: int, cg_tol: float) -> torch.Tensor:
        """y - lam W^T m^2 W x* (equal to x* at the solve), differentiable in the parameters;
        its backward applies (I + lam W^T m^2 W)^-1 to the incoming gradient (implicit differentiation)."""
        lam = self._condition(sigma)
        mask = self.net.cal_mask(mask_input.detach())
        W = self.net.W1
        out = y - lam * W.transpose(mask * (mask * W(x_star.detach())))
        frozen = self.normal_operator(mask.detach(), lam.detach())

        def implicit(grad):
            with torch.no_grad():
                return conjugate_gradient(frozen, grad, max_iter=cg_iters, tol=cg_tol)

        if out.requires_grad:
            out.register_hook(implicit)
        return out
