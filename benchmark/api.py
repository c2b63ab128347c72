"""Benchmark your own model: `regbench.evaluate(model, name=..., tasks=..., probes=...)`.

The model is taken as it is (a regbench Method, a deepinv Prior, a deepinv Denoiser or a
reconstructor: `regbench.methods.external`), calibrated, probed and scored on the same data,
operators, solver and metrics as every registered method, and written as a sweep writes: one row
per test image in `out/rows/`, `out/results.parquet`, `out/leaderboard.{md,csv}`, `out/report.html`
(and W&B runs with `logger="wandb"`). Rows of finished sweeps (`compare`: folders with a
`results.parquet`, by default the released ones under results/) for the same tasks, probes,
profile and seed join the returned leaderboard, `out/compared/leaderboard.md` and the report as
they are, not recomputed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Mapping, Optional

import pandas as pd
from omegaconf import OmegaConf

from regbench.core.plugins import REPO_ROOT
from regbench.core.registry import check, compose
from regbench.core.spec import Run
from regbench.core.validate import validate
from regbench.methods import external

log = logging.getLogger("regbench")


def released_folders(root: Path = REPO_ROOT / "results") -> list[Path]:
    """Folders under results/ that hold released rows (a results.parquet)."""
    return sorted(p.parent for p in root.glob("**/results.parquet"))


def evaluate(
    model,
    name: str,
    tasks: Iterable[str] = ("denoise_bsd68",),
    probes: Iterable[str] = ("nominal",),
    profile: str = "smoke",
    out: str | Path = "runs/mine",
    calibrate: Optional[Mapping[str, tuple[float, float]]] = None,
    weights: Optional[Mapping[str, str]] = None,
    kind: Optional[str] = None,
    compare: Optional[Iterable[str | Path]] = None,
    logger: str = "none",
    device: str = "auto",
    seed: int = 0,
    progress: bool = True,
    overrides: Iterable[str] = (),
) -> pd.DataFrame:
    """Evaluate `model` as method `name` on every task x probe at the sizes of `profile`; returns the
    leaderboard (one line per task, probe, level and method: the model's, and those of `compare`).

    calibrate: {hyperparameter: (low, high)}: exactly these are fitted per task (default: the
    scheme's own, e.g. lam for a prior); weights: {"path": ..., "sha256": ...}, a state dict
    checked and loaded into the model first (rows say `external:<sha256 prefix>`); kind: "prior",
    "denoiser", "reconstructor" or "method" when the model's type does not say; overrides: more
    config overrides (e.g. "profile.data.n_test=4").
    """
    from regbench.evaluation.runner import execute
    from regbench.results import leaderboard, merge
    from regbench.results.loggers import log_leaderboard
    from regbench.results.report import write_report

    tasks, probes = list(tasks), list(probes)
    for group, names in (("task", tasks), ("probe", probes), ("profile", [profile]), ("logger", [logger])):
        for item in names:
            check(group, item)
    source = "none"
    if weights is not None:  # before anything runs: a wrong file evaluates nothing
        state = external.load_weights(weights["path"], weights["sha256"])
        model.load_state_dict(state)
        source = external.weights_source(weights["sha256"])
    method = external.wrap(model, name, kind, calibrate)
    key = external.fingerprint(model, method)
    block = {"name": name, "model": {"external": key, "kind": type(method).__name__}}
    loaded = {"key": key, "train_minutes": 0.0, "training": "none", "weights": source}
    out = Path(out).resolve()
    runs = []
    for task in tasks:
        for probe in probes:
            cfg = compose(
                [
                    f"task={task}",
                    f"probe={probe}",
                    f"profile={profile}",
                    f"out={out}",
                    f"seed={seed}",
                    f"device={device}",
                    f"logger={logger}",
                    f"progress={str(progress).lower()}",
                    *overrides,
                ]
            )
            validate(cfg)
            OmegaConf.set_struct(cfg, False)
            cfg.method = block  # the run's method spec, and the record in OUT/configs and W&B
            runs.append(Run.from_config(cfg))
    for run in runs:
        result = execute(run, method=method, weights=loaded)
        log.info("%s: %s", result["label"], "finished already" if result["skipped"] else f"{result['rows']} rows")
    rows = pd.read_parquet(out / "results.parquet")
    others = [Path(f) for f in (released_folders() if compare is None else compare)]
    if others:  # the same tasks, probes, profile and seed from the other folders, as they are
        rows = merge.merge([out, *others])
        same = rows["task"].isin(tasks) & rows["probe"].isin(probes) & (rows["profile"] == profile)
        rows = rows[same & (rows["seed"] == seed)].reset_index(drop=True)
        merge.write(rows, out / "compared")  # leaderboard.md/csv of the model among the others
    board = leaderboard.aggregate(rows)
    write_report([out, *others], out / "report.html", rows, board)
    if logger != "none":
        log_leaderboard(runs[0].logger, out)
    return board
