"""A researcher's own model as a regbench method, taken as it is (`regbench.evaluate`, `regbench evaluate`).

What a model is decides how it is reconstructed with:
- a regbench `Method`: as it is;
- a *prior* (a deepinv `Prior`, or any object with `fn` and `grad` or `prox`): the shared solver
  minimizes 1/2 ||A x - y||^2 + lam R(x) with its `prox` when it defines one, else with its
  gradient, using its `lipschitz` bound when it declares one and a line search otherwise; lam is
  calibrated per task (`regbench.methods.prior.PriorMethod`);
- a *denoiser* (a deepinv `Denoiser`, or a callable `denoiser(x, sigma)`): regbench's PnP scheme
  around it, its schedule calibrated per task (`regbench.methods.pnp.PnP`);
- a *reconstructor* (a deepinv `Reconstructor`, or a callable `model(y, physics)`): evaluated as it
  is, its output checked (a tensor of the initializer's shape).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import math
from pathlib import Path
from typing import Mapping, Optional

import torch

from regbench.core.hashing import file_digest
from regbench.methods.base import Hyper, Method, SolveReport

KINDS = ("method", "prior", "denoiser", "reconstructor")


class ExternalModelError(ValueError):
    """A model regbench cannot evaluate, or weights that are not the ones named: one line that says why."""


def kind_of(model, name: str) -> str:
    """Which of KINDS `model` is (see the module docstring)."""
    from deepinv.models import Denoiser, Reconstructor
    from deepinv.optim import Prior

    if isinstance(model, Method):
        return "method"
    if isinstance(model, Denoiser):
        return "denoiser"
    if isinstance(model, Reconstructor):
        return "reconstructor"
    if isinstance(model, Prior) or hasattr(model, "fn"):
        return "prior"
    if callable(model):
        try:
            params = list(inspect.signature(model).parameters)
        except (TypeError, ValueError):
            params = []
        second = params[1] if len(params) > 1 else ""
        if second == "physics":
            return "reconstructor"
        if second == "sigma":
            return "denoiser"
    raise ExternalModelError(
        f"model {name!r} ({type(model).__name__}): not something regbench can evaluate: give a regbench Method, "
        "a deepinv Prior (or an object with fn and grad or prox), a deepinv Denoiser (or callable(x, sigma)) or a "
        "reconstructor (callable(y, physics)), or say which with kind="
    )


class Reconstructor(Method):
    """`model(y, physics) -> x`, evaluated as it is (nothing calibrated)."""

    family = "reconstructor"

    def __init__(self, model):
        super().__init__()
        self.model = model

    @torch.no_grad()
    def reconstruct(self, y, physics, x0, hyper, options) -> tuple[torch.Tensor, SolveReport]:
        try:
            x = self.model(y, physics)
        except Exception as err:  # whatever the model raises is a failed row with the reason, never a crash
            raise RuntimeError(f"the model raised {type(err).__name__}: {err}") from err
        if not torch.is_tensor(x):
            raise TypeError(f"the model returned a {type(x).__name__}, not a tensor")
        if x.shape != x0.shape:
            raise ValueError(f"the model returned shape {tuple(x.shape)}; the task's images have {tuple(x0.shape)}")
        return x, SolveReport(iterations=1)


def own(obj, attribute: str, base: type) -> bool:
    """Whether `obj` defines `attribute` itself (not the inherited default of `base`)."""
    mine = getattr(type(obj), attribute, None)
    return mine is not None and mine is not getattr(base, attribute, None)


def prior_method(model, name: str) -> Method:
    """The shared solver around a prior: its prox when it has its own, else its gradient."""
    from deepinv.optim import Prior

    from regbench.methods.prior import PriorMethod

    is_prior = isinstance(model, Prior)
    has_fn = callable(getattr(model, "fn", None)) and (
        not is_prior or getattr(model, "explicit_prior", False) or own(model, "fn", Prior)
    )
    has_prox = callable(getattr(model, "prox", None)) and (not is_prior or own(model, "prox", Prior))
    has_grad = callable(getattr(model, "grad", None)) and (not is_prior or has_fn or own(model, "grad", Prior))
    lacks = [n for n, ok in (("fn", has_fn), ("grad or prox", has_grad or has_prox)) if not ok]
    if lacks:
        raise ExternalModelError(
            f"model {name!r}: a regularizer needs fn and grad or prox; it lacks {', '.join(lacks)}"
        )
    if has_prox:
        return PriorMethod(prior=model)
    return PriorMethod(prior=model, smooth=True, lipschitz=getattr(model, "lipschitz", None))


def wrap(model, name: str, kind: Optional[str] = None, calibrate: Optional[Mapping] = None) -> Method:
    """`model` as a regbench Method; `calibrate`: {hyperparameter: (low, high)}, the ones to fit per task
    (the others keep their defaults); None: the method's own calibration."""
    kind = kind or kind_of(model, name)
    if kind not in KINDS:
        raise ExternalModelError(f"kind={kind!r} is not allowed; allowed: {', '.join(KINDS)}")
    if kind == "method":
        method = model
    elif kind == "prior":
        method = prior_method(model, name)
    elif kind == "denoiser":
        from regbench.methods.pnp import PnP

        method = PnP(denoiser=model)
    else:
        method = Reconstructor(model)
    if calibrate is not None:
        recalibrate(method, calibrate, name)
    return method


def recalibrate(method: Method, ranges: Mapping, name: str) -> None:
    """Calibrate exactly the hyperparameters named in `ranges`, each searched in its [low, high]
    from the geometric middle; the others stay at their defaults."""
    known = method.hyperparameters
    unknown = sorted(set(ranges) - set(known))
    if unknown:
        raise ExternalModelError(
            f"model {name!r}: calibrate names unknown hyperparameter(s) {unknown}; known: {sorted(known)}"
        )
    space = {}
    for key, hyper in known.items():
        if key not in ranges:
            space[key] = Hyper(hyper.default, integer=hyper.integer, noise_power=hyper.noise_power)
            continue
        low, high = (float(v) for v in ranges[key])
        if not 0 < low < high:
            raise ExternalModelError(f"model {name!r}: calibrate[{key!r}]=({low}, {high}) needs 0 < low < high")
        space[key] = Hyper(
            math.sqrt(low * high),
            span=math.sqrt(high / low),
            calibrate=True,
            integer=hyper.integer,
            bounds=(low, high),
            noise_power=hyper.noise_power,
        )
    method.hyperparameters = space  # this instance's search space
    method.hp = method.hyper({}, base={k: h.default for k, h in space.items()})


def sha256_of(path: Path) -> str:
    return file_digest(path, "sha256")


def verify_weights(path: str | Path, sha256: str) -> Path:
    """`path`, after checking that the file is the one named (its sha256); else one line naming the file
    and both hashes."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ExternalModelError(f"weights file {path} does not exist")
    found = sha256_of(path)
    if found != str(sha256).lower():
        raise ExternalModelError(f"weights file {path}: sha256 {found} does not match the expected {sha256}")
    return path


def weights_source(sha256: str) -> str:
    """What rows say of weights trained elsewhere: `external:<sha256 prefix>`."""
    return f"external:{str(sha256).lower()[:12]}"


def load_weights(path: str | Path, sha256: str) -> dict:
    """The state dict in `path`, after `verify_weights`."""
    path = verify_weights(path, sha256)
    state = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def fingerprint(model, method: Method) -> str:
    """What identifies the model's numbers: its class and, for a torch module, its weights and buffers
    (so other weights give other result keys)."""
    parts = [f"{type(model).__module__}.{type(model).__qualname__}", repr(sorted(method.calibration_space()))]
    digest = hashlib.sha256("|".join(parts).encode())
    if isinstance(model, torch.nn.Module):
        for key, value in sorted(model.state_dict().items()):
            digest.update(key.encode())
            if torch.is_tensor(value):
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
