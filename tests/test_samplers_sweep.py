"""Every registered method through the smoke default sweep (experiment=default); samplers once per seed."""

import json

import pandas as pd
import pytest
from conftest import STUDY_ONLY, run_cli

from regbench.core.registry import known, sweep_members


@pytest.fixture(scope="module")
def methods_sweep(smoke_sweep):
    """experiment=default covers every registered method: the smoke sweep run once for all tests serves."""
    return smoke_sweep["out"]


def test_diffpir_and_dps_share_one_trained_diffusion_prior(methods_sweep):
    cache = methods_sweep.parent / "cache"  # the smoke sweep's checkpoint cache
    trained = sorted(p.name.split("-")[0] for p in (cache / "checkpoints").glob("*.pt"))
    assert trained.count("diffusion_prior") == 1 and "diffpir" not in trained and "dps" not in trained
    rows = pd.read_parquet(methods_sweep / "results.parquet")
    keys = rows.groupby("method").checkpoint.first()
    assert keys["diffpir"] == keys["dps"] != keys["pnp_drunet"]


def test_every_registered_method_has_rows_in_the_methods_sweep(methods_sweep):
    rows = pd.read_parquet(methods_sweep / "results.parquet")
    assert set(rows.method) == set(sweep_members("method"))
    assert set(known("method")) - set(sweep_members("method")) <= STUDY_ONLY  # opted out: `sweep: false`
    assert rows.psnr.notna().all() and (rows.status == "ok").all()


def test_samplers_are_evaluated_once_per_seed_and_report_the_spread(methods_sweep):
    rows = pd.read_parquet(methods_sweep / "results.parquet")
    for name in ("diffpir", "dps"):
        mine = rows[rows.method == name]
        per_image = mine.groupby("image_id").sample_seed.apply(sorted)
        assert per_image.map(lambda s: s == [0, 1]).all() and len(per_image) == 2  # reconstruct.smoke.seeds
        assert (mine.groupby("image_id").psnr.nunique() == 2).all()  # different seeds, different samples
        assert (mine.iterations == 3).all()  # reconstruct.smoke.steps
        index = json.loads(next((methods_sweep / "examples").glob(f"{name}__*/index.json")).read_text())
        assert len(index["examples"]) == 2  # example images once per image, not per seed
    assert (rows[~rows.method.isin(["diffpir", "dps"])].sample_seed == 0).all()
    board = pd.read_csv(methods_sweep / "leaderboard.csv").set_index("method")
    assert board.loc["diffpir", "seed_std"] > 0 and board.loc["tv", "seed_std"] == 0
    assert "seed std" in (methods_sweep / "leaderboard.md").read_text()


def test_a_method_without_reconstruct_settings_for_the_profile_fails_in_one_line(tmp_path):
    proc = run_cli(
        "method=diffpir",
        "profile=smoke",
        "method.reconstruct.smoke=null",
        f"out={tmp_path / 'out'}",
        cache=tmp_path / "cache",
    )
    assert proc.returncode == 2
    assert "method.reconstruct (of diffpir)" in proc.stderr and "a section for profile 'smoke'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out" / "rows").exists()


def test_a_sampler_can_evaluate_the_first_test_images_only(tmp_path):
    proc = run_cli(
        "method=diffpir",
        "profile=smoke",
        "+method.reconstruct.smoke.n_test=1",
        f"out={tmp_path / 'out'}",
        "progress=false",
        cache=tmp_path / "cache",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert rows.image_id.nunique() == 1 and sorted(rows.sample_seed) == [0, 1]
    board = pd.read_csv(tmp_path / "out" / "leaderboard.csv").set_index("method")
    assert board.loc["diffpir", "n_images"] == 1
