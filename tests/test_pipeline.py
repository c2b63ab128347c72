"""End to end: the smoke sweep writes rows, leaderboards and configs; a rerun does nothing."""

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from PIL import Image

from regbench.core.registry import sweep_members
from regbench.results.store import REQUIRED_COLUMNS

METHODS = sorted(sweep_members("method"))


def test_smoke_sweep_writes_rows_for_every_method(smoke_sweep):
    rows = pd.read_parquet(smoke_sweep["out"] / "results.parquet")
    assert set(REQUIRED_COLUMNS) <= set(rows.columns)
    assert sorted(rows.method.unique()) == METHODS and {"tv", "crr", "wcrr"} <= set(METHODS)
    assert (rows.groupby("method").image_id.nunique() == 2).all()
    assert rows.psnr.between(10, 60).all() and rows.ssim.between(0, 1).all()
    assert (rows.probe == "nominal").all() and (rows.level == 0).all() and (rows.profile == "smoke").all()
    assert rows.loc[rows.method == "tv", "params"].eq(0).all()
    assert rows.loc[rows.method.isin(["crr", "wcrr"]), "params"].gt(10_000).all()
    for label in METHODS:
        cfg = (smoke_sweep["out"] / "configs" / f"{label}__denoise_bsd68__nominal.yaml").read_text()
        assert f"name: {label}" in cfg and "name: smoke" in cfg


def test_leaderboard_matches_rows(smoke_sweep):
    rows = pd.read_parquet(smoke_sweep["out"] / "results.parquet")
    board = pd.read_csv(smoke_sweep["out"] / "leaderboard.csv")
    assert len(board) == len(METHODS)
    for r in board.itertuples():
        mine = rows[rows.method == r.method]
        assert r.psnr_mean == pytest.approx(mine.psnr.mean(), abs=1e-9)
        assert r.ssim_std == pytest.approx(mine.ssim.std(), abs=1e-9)
        assert r.seconds_mean == pytest.approx(mine.seconds.mean(), abs=1e-9)
        assert r.n_images == 2
    md = (smoke_sweep["out"] / "leaderboard.md").read_text()
    for r in board.itertuples():
        assert f"| {r.method}" in md and f"{r.psnr_mean:.2f} ± {r.psnr_std:.2f}" in md


def test_denoising_improves_on_the_noisy_input(smoke_sweep):
    rows = pd.read_parquet(smoke_sweep["out"] / "results.parquet")
    noisy_psnr = 20 * np.log10(255 / 25)  # ~20.17 dB for sigma=25/255
    mean = rows.groupby("method").psnr.mean()
    # the regularizers with few or no weights improve even at smoke size (3 training steps leave the networks raw)
    assert (mean[["tv", "wavelet_l1", "crr", "wcrr"]] > noisy_psnr + 2).all()
    assert abs(mean["initializer"] - noisy_psnr) < 0.3  # the initializer is the noisy image itself


def test_rerun_of_a_finished_sweep_trains_and_evaluates_nothing(smoke_sweep):
    out, cache = smoke_sweep["out"], smoke_sweep["cache"]
    before = {p.name: p.stat().st_mtime_ns for p in (out / "rows").glob("*.parquet")}
    proc = run_cli("-m", "experiment=default", "profile=smoke", f"out={out}", "progress=false", cache=cache)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = proc.stdout + proc.stderr
    assert log.count("finished already") == len(METHODS)
    assert "training" not in log and "calibrated" not in log
    assert {p.name: p.stat().st_mtime_ns for p in (out / "rows").glob("*.parquet")} == before


def test_checkpoints_are_reused_by_a_new_sweep(smoke_sweep, tmp_path):
    proc = run_cli(
        "-m", "method=crr,wcrr", "profile=smoke", f"out={tmp_path}", "progress=false", cache=smoke_sweep["cache"]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = proc.stdout + proc.stderr
    assert "using checkpoint" in log and "training" not in log
    # the calibration comes from the cache, with the seconds it took when it ran
    first = pd.read_parquet(smoke_sweep["out"] / "results.parquet").groupby("method").calib_seconds.first()
    again = pd.read_parquet(tmp_path / "results.parquet").groupby("method").calib_seconds.first()
    assert "calibration from cache" in log and (first[["crr", "wcrr"]] > 0).all()
    assert again.to_dict() == first[["crr", "wcrr"]].to_dict()


def test_evaluate_on_a_folder_of_own_images(smoke_sweep, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("b_img", "a_img"):
        smooth = np.kron(rng.uniform(0, 255, (8, 8)), np.ones((10, 10))).astype(np.uint8)
        Image.fromarray(smooth).save(folder / f"{name}.png")
    proc = run_cli(
        "method=tv",
        "task=denoise_folder",
        f"task.images={folder}",
        "profile=smoke",
        f"out={tmp_path / 'out'}",
        "progress=false",
        cache=smoke_sweep["cache"],
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert list(rows.image_id) == ["a_img", "b_img"] and (rows.task == "denoise_folder").all()
    # the same problem as denoise_bsd68 on other test images: BSD68's calibration, not a new search
    assert "tv: calibration from cache" in proc.stdout + proc.stderr
    bsd68 = pd.read_parquet(smoke_sweep["out"] / "results.parquet").query("method == 'tv'")
    assert rows.hyper.iloc[0] == bsd68.hyper.iloc[0] and rows.calib_psnr.iloc[0] == bsd68.calib_psnr.iloc[0]


def test_a_cuda_run_computes_in_full_float32(monkeypatch):
    """cuDNN runs float32 convolutions in TF32 by default: a CUDA run switches that off, the CPU is left alone."""
    import torch

    from regbench.core.device import resolve_device

    matmul = torch.backends.cuda.matmul
    saved = matmul.allow_tf32
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    try:
        matmul.allow_tf32 = True
        assert resolve_device("cpu").type == "cpu" and torch.backends.cudnn.allow_tf32  # the CPU leaves them alone
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        assert resolve_device("auto").type == "cuda"
        assert not torch.backends.cudnn.allow_tf32 and not matmul.allow_tf32
    finally:
        matmul.allow_tf32 = saved
