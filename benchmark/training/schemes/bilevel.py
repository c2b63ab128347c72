"""Bilevel training of a smooth regularizer on denoising (`bilevel_ift`, `bilevel_jfb`).

Each step solves the lower-level problem
    x*(theta) = argmin_z 1/2 ||z - y||^2 + lam R_theta(z)
for a batch of noisy patches near convergence without gradients (APG, step 1 / (1 + lam L_R), or the
solver's line search for a regularizer without a bound: TDV, LSR, CNNs),
and descends the upper-level loss ||x* - x||^2 / n in theta (the regularizer's parameters and its
learned hyperparameters):
  - `bilevel_ift`: the exact hypergradient at the minimizer by the implicit function theorem,
    d loss/d theta = -(d residual/d theta)^T v with (I + lam Hess R(x*)) v = d loss/d x*, the
    Hessian system solved by CG (the method's `hessian_operator` when it has one, else
    Hessian-vector products by autograd), as the bilevel training of the comparative study of
    learned regularizers (Hertrich, Wong, Denker et al. 2025);
  - `bilevel_jfb`: Jacobian-free backpropagation, through one gradient step from the minimizer,
    x* - step (x* - y + lam grad R(x*)). It stands (I + lam Hess R)^-1 by `step` x I; the YAML's
    step 1 (the data term's own step) keeps the flat directions, where most of an image's error
    lies, at their exact weight. The safe step 1 / (1 + lam L_R) scales the whole hypergradient
    down by 1 + lam L_R (tens along a ridge training), which puts the gradients of the ridge
    regularizers' splines below Adam's epsilon: they hardly learn.
Training on the minimizer rather than through a fixed number of unrolled steps keeps the model
from exploiting early stopping.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from regbench.solvers.apg import apg
from regbench.solvers.options import SolverOptions
from regbench.training.schemes.regularizer import DIFFERENTIABLE, RegularizerScheme, mse_metrics


class Bilevel(RegularizerScheme):
    implicit = True

    def batch_loss(self, method, x, y, hyper, values, settings, draws) -> dict:
        inner = dict(max_iter=int(settings["inner_iters"]), tol=float(settings["inner_tol"]), restart=True)
        lam, lam_v = hyper["lam"], values["lam"]
        with torch.no_grad():
            options = SolverOptions(compile=bool(settings.get("compile", False)), track_energy=False)
            frozen = method.regularizer(values, options, y)
            grad = lambda z: z - y + lam_v * frozen.grad(z)  # noqa: E731
            if frozen.lipschitz is None:  # no bound: the line search finds the step (1 / its final L is logged)
                energy = lambda z: 0.5 * ((z - y) ** 2).flatten(1).sum(1) + lam_v * frozen.fn(z)  # noqa: E731
                x_star, info = apg(y, grad, f_value=energy, **inner)
                lip = 1.0 / info.step
            else:
                lip = 1.0 + lam_v * frozen.lipschitz
                x_star, _ = apg(y, grad, lipschitz=lip, **inner)
        reg = method.regularizer(hyper, DIFFERENTIABLE, x_star)  # differentiable in theta
        residual = x_star - y + lam * reg.grad(x_star)
        if self.implicit:
            x_leaf = x_star.detach().requires_grad_(True)
            (dloss,) = torch.autograd.grad(F.mse_loss(x_leaf, x), x_leaf)
            with torch.no_grad():
                v = conjugate_gradient(hessian_system(method, x_star, lam_v, values), dloss, int(settings["cg_iters"]))
            loss = F.mse_loss(x_star, x).detach()
            (-(residual * v).sum()).backward()
        else:
            loss = F.mse_loss(x_star - float(settings.get("step", 1.0)) * residual, x)
            loss.backward()
        return mse_metrics(loss, lipschitz=lip)


class ImplicitBilevel(Bilevel):
    implicit = True


class JacobianFreeBilevel(Bilevel):
    implicit = False


def hessian_system(method, x: torch.Tensor, lam: float, hyper: dict):
    """v -> (I + lam Hess R(x)) v: the method's own operator, or Hessian-vector products by autograd."""
    own = getattr(method, "hessian_operator", None)
    if own is not None:
        return own(x, lam, hyper)
    with torch.enable_grad():
        point = x.detach().requires_grad_(True)
        grad = method.regularizer(hyper, DIFFERENTIABLE, point).grad(point)

    def apply(v):
        with torch.enable_grad():
            (hv,) = torch.autograd.grad(grad, point, grad_outputs=v, retain_graph=True)
        return v + lam * hv

    return apply


def conjugate_gradient(apply, rhs: torch.Tensor, iters: int, tol: float = 1e-4) -> torch.Tensor:
    """Solve apply(v) = rhs (apply symmetric, positive definite on the iterates) by CG."""
    v = torch.zeros_like(rhs)
    r = rhs.clone()
    p = r.clone()
    rr = (r * r).sum()
    stop = tol**2 * rr
    for _ in range(iters):
        Ap = apply(p)
        curvature = (p * Ap).sum()
        if curvature <= 0 or rr <= stop:
            break
        alpha = rr / curvature
        v += alpha * p
        r -= alpha * Ap
        rr_new = (r * r).sum()
        p = r + (rr_new / rr) * p
        rr = rr_new
    return v
