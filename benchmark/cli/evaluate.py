"""`regbench evaluate module.path:Object`: benchmark a model from your own code without writing a YAML.

    regbench evaluate mypkg.models:MyReg --name my_reg --tasks denoise_bsd68,ct_parallel_ellipses \\
        --probes nominal,noise_sweep --profile smoke --out runs/mine [--calibrate lam=1e-3:10] \\
        [--weights my_reg.pt --sha256 HEX] [--kind prior] [--compare runs/cpu] [OVERRIDE ...]

The object is a class (instantiated without arguments), an instance or a function; what it is decides
how it is evaluated (regbench.methods.external). Prints the leaderboard.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import sys
from pathlib import Path


def load_object(path: str):
    """`module.path:Name` (the current folder importable, as `python -c` has it)."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise SystemExit(f"regbench evaluate: give the model as module.path:Name, not {path!r}")
    sys.path.insert(0, str(Path.cwd()))
    try:
        obj = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise SystemExit(f"regbench evaluate: cannot load {path}: {err}") from None
    return obj() if inspect.isclass(obj) else obj


def ranges(items: list[str]) -> dict | None:
    """`lam=1e-3:10` -> {"lam": (0.001, 10.0)}."""
    if not items:
        return None
    out = {}
    for item in items:
        key, _, span = item.partition("=")
        low, _, high = span.partition(":")
        try:
            out[key] = (float(low), float(high))
        except ValueError:
            raise SystemExit(f"regbench evaluate: --calibrate {item!r}: write name=low:high") from None
    return out


def main(argv: list[str]) -> int:
    from regbench.api import evaluate
    from regbench.core.registry import RegistryError
    from regbench.methods.external import ExternalModelError

    parser = argparse.ArgumentParser(prog="regbench evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("model", help="module.path:Name")
    parser.add_argument("--name", help="the method's name in rows and leaderboards (default: Name)")
    parser.add_argument("--tasks", default="denoise_bsd68")
    parser.add_argument("--probes", default="nominal")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--out", default="runs/mine")
    parser.add_argument("--calibrate", action="append", default=[], metavar="NAME=LOW:HIGH")
    parser.add_argument("--weights", help="a state dict trained elsewhere (needs --sha256)")
    parser.add_argument("--sha256")
    parser.add_argument("--kind", choices=["method", "prior", "denoiser", "reconstructor"])
    parser.add_argument("--compare", action="append", default=None, metavar="FOLDER")
    parser.add_argument("--logger", default="none")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. profile.data.n_test=4")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s")
    if bool(args.weights) != bool(args.sha256):
        raise SystemExit("regbench evaluate: --weights and --sha256 go together")
    try:
        board = evaluate(
            load_object(args.model),
            name=args.name or args.model.partition(":")[2],
            tasks=args.tasks.split(","),
            probes=args.probes.split(","),
            profile=args.profile,
            out=args.out,
            calibrate=ranges(args.calibrate),
            weights={"path": args.weights, "sha256": args.sha256} if args.weights else None,
            kind=args.kind,
            compare=args.compare,
            logger=args.logger,
            overrides=args.overrides,
        )
    except (ExternalModelError, RegistryError) as err:
        print(f"regbench evaluate: error: {err}", file=sys.stderr)
        return 2
    columns = ["task", "probe", "level", "rank", "method", "weights", "psnr_mean", "psnr_ci_low", "psnr_ci_high"]
    print(board[[c for c in columns if c in board]].round(2).to_markdown(index=False))
    out = Path(args.out).resolve()
    print(f"leaderboard: {out / 'leaderboard.md'}; report: {out / 'report.html'}")
    return 0
