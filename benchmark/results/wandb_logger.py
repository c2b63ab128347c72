"""logger=wandb: one W&B run per combination and one leaderboard run per sweep, grouped by OUT.

Mode (`logger.mode`): `auto` follows $WANDB_MODE when set, else is online when
W&B credentials are configured (WANDB_API_KEY or a netrc entry, as `wandb login`
writes) and offline otherwise. Offline runs are folders `OUT/wandb/offline-run-*`
(upload later with `wandb sync`). An online start that fails (no network, bad
key) falls back to offline for the rest of the sweep, an offline start that fails
turns W&B off for the sweep: one warning line each, never a failed sweep.

Combination run: the resolved config; summary metrics (level 0 as `psnr`, `ssim`,
...; other levels as `level=<l>/psnr`, ...); the per-image rows as the table
`per_image`; the kept example reconstructions as images `examples/level=<l>`
(ground truth | initializer | reconstruction, PSNRs in the caption); the training
curves of the checkpoint (`train/loss`, `train/lipschitz`, ... over `train/step`).
Leaderboard run: tables `leaderboard` (one line per task x method on the nominal
task: tie-aware rank, mean with its 95% bootstrap interval, the paired test against
the next method down, the published reference and the gap), `probe_<name>` (PSNR/SSIM
per level), `mean_rank` and `rank_stability` (results/statistics.py), summary
`<task>/<method>/psnr` and `.../ssim`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from PIL import Image

from regbench.core.hashing import config_hash
from regbench.core.spec import Run
from regbench.evaluation.examples import label_of, load_examples
from regbench.results import leaderboard, references, statistics
from regbench.results.loggers import one_line
from regbench.training import checkpoints

log = logging.getLogger("regbench")

MODES = ("auto", "online", "offline", "disabled")
ROW_COLUMNS = [
    "level",
    "image_id",
    "psnr",
    "ssim",
    "seconds",
    "iterations",
    "converged",
    "rel_change",
    "grad_ratio",
    "line_search_evals",
    "step",
    "status",
    "peak_mem_mb",
    "height",
    "width",
]
OVERALL_COLUMNS = [
    "task",
    "rank",
    "method",
    "weights",
    "psnr_mean",
    "psnr_std",
    "psnr_ci_low",
    "psnr_ci_high",
    "p_next",
    "tied_next",
    "ssim_mean",
    "ssim_std",
    "seconds_mean",
    "iterations_mean",
    "converged_frac",
    "params",
    "train_minutes",
    "n_images",
    "reference_psnr",
    "gap_db",
]


def logged_in() -> bool:
    """Whether W&B credentials are configured (environment or netrc); never prompts, never connects."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    try:
        from wandb.sdk.lib.wbauth import wbnetrc

        return bool(wbnetrc.read_netrc_auth(host=os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")))
    except Exception:
        return False


def resolve_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"logger.mode={mode!r} is not allowed; allowed: {', '.join(MODES)}")
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env in ("online", "offline", "disabled"):
        return env
    if env == "dryrun":
        return "offline"
    return "online" if logged_in() else "offline"


def sweep_group(out: Path) -> str:
    """The W&B group of everything written to one OUT: its folder name plus a short hash of its path."""
    return f"{out.name}-{config_hash(str(out.resolve()), length=6)}"


def triptych(folder: Path, files: dict) -> np.ndarray:
    """Ground truth | initializer | reconstruction side by side (2-pixel white gaps)."""
    images = [np.asarray(Image.open(folder / files[k]).convert("RGB")) for k in ("truth", "init", "recon")]
    height = max(a.shape[0] for a in images)
    gap = np.full((height, 2, 3), 255, np.uint8)
    padded = [np.pad(a, ((0, height - a.shape[0]), (0, 0), (0, 0)), constant_values=255) for a in images]
    return np.concatenate([padded[0], gap, padded[1], gap, padded[2]], axis=1)


class WandbLogger:
    def __init__(self, options: dict, out: Path):
        self.options = options
        self.out = Path(out).resolve()
        self.mode = resolve_mode(str(self.options.get("mode", "auto")))
        self.group = self.options.get("group") or sweep_group(self.out)
        self.told_offline = False

    # -- runs ----------------------------------------------------------------
    def _start(self, **init):
        """A started run, falling back online -> offline -> off; None when W&B is off."""
        if self.mode == "disabled":
            return None
        import wandb

        while True:
            mode = self.mode
            try:
                settings = wandb.Settings(
                    mode=mode,
                    silent=True,
                    console="off",
                    x_disable_stats=True,
                    save_code=False,
                    init_timeout=float(self.options.get("init_timeout", 30)),
                )
                self.out.mkdir(parents=True, exist_ok=True)
                tags = [*(self.options.get("tags") or []), *init.get("tags", [])]
                return wandb.init(
                    project=self.options.get("project") or "regbench",
                    entity=self.options.get("entity"),
                    group=self.group,
                    dir=str(self.out),
                    settings=settings,
                    **{**init, "tags": tags},
                )
            except Exception as err:
                self.mode = "offline" if mode == "online" else "disabled"
                log.warning(
                    "W&B: %s start failed (%s); %s",
                    mode,
                    one_line(err),
                    "continuing offline" if self.mode == "offline" else "W&B logging is off for this sweep",
                )
                if self.mode == "disabled":
                    return None

    def _finish(self, run, ok: bool) -> None:
        folder = Path(run.dir).parent
        run.finish(exit_code=0 if ok else 1)
        if self.mode == "offline" and not self.told_offline:
            self.told_offline = True
            log.info(
                "W&B offline runs in %s; upload them with: wandb sync %s/offline-run-*", folder.parent, folder.parent
            )

    def _publish(self, init: dict, write) -> None:
        run = self._start(**init)
        if run is None:
            return
        ok = False
        try:
            write(run)
            ok = True
        finally:
            self._finish(run, ok)

    # -- one combination ------------------------------------------------------
    def combination(self, run: Run, rows: list[dict], board) -> None:
        common = rows[0] if rows else {}
        label = label_of(run.method.label, run.task.name, run.probe.name)
        config = OmegaConf.to_container(run.config, resolve=True) if run.config is not None else {}
        init = {
            "name": label,
            "job_type": "combination",
            "config": config,
            "tags": [
                run.method.name,
                run.task.name,
                run.probe.name,
                run.profile.name,
                *([f"training={common['training']}"] if common.get("training") not in (None, "none") else []),
            ],
        }

        def write(wandb_run):
            import wandb

            self._log_training(wandb_run, run, common.get("checkpoint"))
            df = pd.DataFrame(rows)
            media = {"per_image": wandb.Table(dataframe=df[[c for c in ROW_COLUMNS if c in df]].reset_index(drop=True))}
            for index in load_examples(self.out):
                if index.get("config_hash") != common.get("config_hash"):
                    continue
                for level in sorted({e["level"] for e in index["examples"]}):
                    media[f"examples/level={level}"] = [
                        wandb.Image(
                            triptych(index["folder"], e["files"]),
                            caption=f"{e['image_id']}: truth | initializer {e['init_psnr']:.2f} dB | "
                            f"{run.method.name} {e['psnr']:.2f} dB",
                        )
                        for e in index["examples"]
                        if e["level"] == level
                    ]
            wandb_run.log(media)
            wandb_run.summary.update(self._summary(df))

        self._publish(init, write)

    @staticmethod
    def _summary(df: pd.DataFrame) -> dict:
        summary = {}
        for r in leaderboard.aggregate(df).itertuples():
            prefix = "" if r.level == 0 else f"level={r.level}/"
            summary.update(
                {
                    f"{prefix}psnr": r.psnr_mean,
                    f"{prefix}psnr_std": r.psnr_std,
                    f"{prefix}ssim": r.ssim_mean,
                    f"{prefix}seconds_per_image": r.seconds_mean,
                    f"{prefix}iterations": r.iterations_mean,
                    f"{prefix}converged_frac": r.converged_frac,
                    f"{prefix}n_images": int(r.n_images),
                }
            )
        first = df.iloc[0]
        summary.update(
            {
                "params": int(first["params"]),
                "train_minutes": float(first["train_minutes"]),
                "calib_psnr": float(first["calib_psnr"]),
                "hyper": json.loads(first["hyper"]),
                "config_hash": first["config_hash"],
                "git_rev": first["git_rev"],
                "device": first["device"],
            }
        )
        return summary

    @staticmethod
    def _log_training(wandb_run, run: Run, key: str | None) -> None:
        """The checkpoint's training history (subsampled to <= ~200 points when it was saved)."""
        if not key or not run.method.trains:
            return
        name = checkpoints.weights_name(checkpoints.spec_of(run))
        entry = checkpoints.entry(run.folders, name, key) or {}
        train_log = entry.get("log") or {}
        history = train_log.get("history") or {}
        length = min((len(v) for v in history.values()), default=0)
        if not length:
            return
        stride = max(1, int(train_log.get("steps", length)) // 200)
        wandb_run.define_metric("train/step")
        wandb_run.define_metric("train/*", step_metric="train/step")
        for i in range(length):
            wandb_run.log({"train/step": i * stride, **{f"train/{k}": float(v[i]) for k, v in history.items()}})

    # -- the sweep's leaderboard ----------------------------------------------
    def leaderboard(self) -> None:
        path = self.out / "results.parquet"
        if not path.exists():
            return
        rows = pd.read_parquet(path)
        if rows.empty:
            return
        overall = references.with_references(leaderboard.nominal(rows))
        board = leaderboard.aggregate(rows)
        init = {
            "name": "leaderboard",
            "job_type": "leaderboard",
            "config": {
                "out": str(self.out),
                "profiles": sorted(rows["profile"].unique()),
                "tasks": sorted(rows["task"].unique()),
                "probes": sorted(rows["probe"].unique()),
                "methods": sorted(rows["method"].unique()),
                "git_revs": sorted(rows["git_rev"].unique()),
            },
        }

        def write(run):
            import wandb

            tables = {"leaderboard": wandb.Table(dataframe=overall[OVERALL_COLUMNS])}
            crossed = leaderboard.training_table(board)
            if not crossed.empty:
                tables["method_x_training"] = wandb.Table(dataframe=crossed)
            for probe in sorted(board["probe"].unique()):
                tables[f"probe_{probe}"] = wandb.Table(dataframe=leaderboard.probe_table(board, probe))
            tables["mean_rank"] = wandb.Table(dataframe=statistics.mean_ranks(board))
            stability = statistics.rank_stability(board)
            if not stability.empty:
                tables["rank_stability"] = wandb.Table(dataframe=stability)
            run.log(tables)
            summary = {"n_rows": len(rows), "n_methods": int(rows["method"].nunique())}
            for r in overall.itertuples():
                summary.update({f"{r.task}/{r.method}/psnr": r.psnr_mean, f"{r.task}/{r.method}/ssim": r.ssim_mean})
                if r.reference_psnr == r.reference_psnr:
                    summary[f"{r.task}/{r.method}/gap_db"] = r.gap_db
            run.summary.update(summary)

        self._publish(init, write)
