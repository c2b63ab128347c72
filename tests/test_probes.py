"""Probes change the data exactly as stated; level 0 is the nominal task, bit for bit."""

import os

import pytest
import torch

from regbench.datasets.bsds500 import BSDS500
from regbench.datasets.denoising import DenoisingTask
from regbench.probes import NoiseSweep, Probe

pytestmark = pytest.mark.skipif(not os.environ.get("REGBENCH_DATA"), reason="REGBENCH_DATA not set")


@pytest.fixture(scope="module")
def task():
    return DenoisingTask(25, BSDS500("val_not68"), BSDS500("val_not68"), BSDS500("bsd68"))


def test_noise_sweep_scales_the_measured_noise_std(task):
    probe = NoiseSweep(levels=[0, -1, 1, 2])
    for level in probe.levels:
        noise = torch.cat([(s.y - s.x).flatten() for s in probe.samples(task, level, 8, None, 0, "cpu")])
        assert float(noise.std()) == pytest.approx(25 / 255 * 2.0**level, rel=0.05)


def test_level_zero_reproduces_the_nominal_measurements(task):
    nominal = list(Probe().samples(task, 0, 3, 64, 0, "cpu"))
    swept = list(NoiseSweep(levels=[0, 1]).samples(task, 0, 3, 64, 0, "cpu"))
    assert all(torch.equal(a.y, b.y) and a.image_id == b.image_id for a, b in zip(nominal, swept))


def test_levels_must_start_at_the_nominal_task():
    with pytest.raises(ValueError, match=r"probe.levels=\[1, 2\] is not allowed"):
        NoiseSweep(levels=[1, 2])


def test_noise_model_levels_make_the_stated_noise(task):
    from regbench.probes import NoiseModel

    probe = NoiseModel()
    sigma = 25 / 255
    by_level = {lv: list(probe.samples(task, lv, 4, 128, 0, "cpu")) for lv in probe.levels}
    nominal = list(Probe().samples(task, 0, 4, 128, 0, "cpu"))
    assert all(torch.equal(a.y, b.y) for a, b in zip(by_level[0], nominal))
    # 1 Poisson-Gaussian: variance sigma^2 + 0.02^2 * x, checked on bright and dark pixels separately
    x = torch.cat([s.x.flatten() for s in by_level[1]])
    r = torch.cat([(s.y - s.x).flatten() for s in by_level[1]])
    for mask in (x > 0.6, x < 0.3):
        expected = (sigma**2 + 0.02**2 * x[mask].mean()) ** 0.5
        assert float(r[mask].std()) == pytest.approx(float(expected), rel=0.05)
    # 2 salt and pepper: 5% of the measurements at the image's min or max
    hits = [((s.y == s.x.min()) | (s.y == s.x.max())).float().mean() for s in by_level[2]]
    assert float(sum(hits) / len(hits)) == pytest.approx(0.05, abs=0.01)
    # 3 uniform with the nominal std: bounded by sqrt(3) sigma
    r = torch.cat([(s.y - s.x).flatten() for s in by_level[3]])
    assert float(r.std()) == pytest.approx(sigma, rel=0.03) and float(r.abs().max()) <= 3**0.5 * sigma + 1e-6
    assert probe.label(1) == "poisson_gaussian" and probe.label(3) == "uniform"
    with pytest.raises(ValueError, match="noise_model levels \\[4\\] are not allowed"):
        NoiseModel(levels=[0, 4])


def test_ood_levels_bring_other_images_through_the_same_operator(task):
    from regbench.datasets.bundled import Phantoms, SkimageImages
    from regbench.probes import OutOfDistribution

    probe = OutOfDistribution([SkimageImages(), Phantoms(n=2, size=64)])
    assert probe.levels == [0, 1, 2] and probe.label(1) == "skimage" and probe.label(2) == "phantoms"
    texts = list(probe.samples(task, 1, 3, 96, 0, "cpu"))
    assert [s.image_id for s in texts] == ["skimage/text", "skimage/page", "skimage/brick"]
    assert all(s.x.shape == (1, 1, 96, 96) and 0 <= float(s.x.min()) and float(s.x.max()) <= 1 for s in texts)
    noise = torch.cat([(s.y - s.x).flatten() for s in texts])
    assert float(noise.std()) == pytest.approx(25 / 255, rel=0.05)
    a = [s.x for s in probe.samples(task, 2, None, None, 0, "cpu")]
    b = [s.x for s in probe.samples(task, 2, None, None, 0, "cpu")]
    assert len(a) == 3 and all(torch.equal(u, v) for u, v in zip(a, b))  # phantoms are seeded
    assert not torch.equal(a[1], a[2])


def test_ood_on_ct_brings_non_square_natural_images_to_the_reconstruction_grid():
    """CT reconstructs on a square grid: an OOD image (text is 172x448) is cut to its centred
    square and area-resampled to the task's resolution, then measured by the nominal operator."""
    from conftest import compose

    from regbench.core.instantiate import build
    from regbench.datasets.bundled import SkimageImages
    from regbench.probes import OutOfDistribution

    task = build(compose("task=ct_parallel_ellipses", "profile=smoke").task.spec)
    text = SkimageImages().load("text")
    assert text.shape[-2] != text.shape[-1]
    s = next(iter(OutOfDistribution([SkimageImages()]).samples(task, 1, 1, 64, 0, "cpu")))
    r = task.resolution(64)
    assert s.image_id == "skimage/text" and tuple(s.x.shape) == (1, 1, r, r)
    side = min(text.shape[-2:])
    left = (text.shape[-1] - side) // 2
    square = text[..., :side, left : left + side]
    expected = torch.nn.functional.interpolate(square.unsqueeze(0), size=(r, r), mode="area")
    assert torch.allclose(s.x, expected, atol=1e-6)
    assert float(s.x.mean()) == pytest.approx(float(square.mean()), abs=2e-3)
    assert tuple(s.y.shape) == tuple(task.measure(s.x, "ood", "x", 0)[0].shape)


def test_sensitivity_measures_the_spread_over_noise_realizations(task):
    from regbench.evaluation.reconstruct import Reconstruction
    from regbench.methods.tv import TV
    from regbench.probes import Sensitivity
    from regbench.solvers.options import SolverOptions

    recon = Reconstruction(TV(), {"lam": 0.07}, SolverOptions(tol=1e-4, max_iter=200))
    probe = Sensitivity(realizations=4)
    s = next(probe.samples(task, 0, 1, 48, 0, "cpu"))
    x_hat, _ = recon(s)
    extra = probe.extra(recon, task, s, x_hat, 0)
    assert extra["realizations"] == 4
    # a denoiser's output varies less than its input noise, and not at all would be a bug
    assert 0.1 * 25 / 255 < extra["sensitivity_std"] < 25 / 255 and extra["sensitivity_max"] >= extra["sensitivity_std"]
    with pytest.raises(ValueError, match="realizations=1 is not allowed"):
        Sensitivity(realizations=1)


def test_probe_sweep_rows_carry_variants_and_summaries(tmp_path):
    import pandas as pd
    from conftest import run_cli

    out = tmp_path / "out"
    proc = run_cli(
        "-m",
        "method=tv",
        "probe=nominal,noise_model,ood,sensitivity",
        "profile=smoke",
        f"out={out}",
        "progress=false",
        cache=tmp_path / "cache",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = pd.read_parquet(out / "results.parquet")
    assert sorted(rows.probe.unique()) == ["noise_model", "nominal", "ood", "sensitivity"]
    assert set(rows[rows.probe == "noise_model"].variant) == {"nominal", "poisson_gaussian", "salt_pepper", "uniform"}
    assert set(rows[rows.probe == "ood"].variant) == {"nominal", "skimage", "phantoms"}
    # level 0 of every probe is the nominal task, bit for bit
    level0 = rows[rows.level == 0].pivot_table(index="image_id", columns="probe", values="psnr")
    assert (level0.nunique(axis=1) == 1).all()
    sens = rows[rows.probe == "sensitivity"]
    assert sens.sensitivity_std.between(1e-4, 25 / 255).all() and (sens.realizations == 2).all()
    md = (out / "leaderboard.md").read_text()
    assert "## denoise_bsd68 / noise_model / level 2 (salt_pepper)" in md and "## Probe summaries" in md
    summary = md.split("## Probe summaries")[1]
    assert "| noise_model | tv" in summary and "| ood" in summary


def test_ct_probe_levels_score_an_image_on_the_same_range_as_level_zero():
    """CT scores each image on its own range (max_pixel None): every level of a probe that rebuilds
    samples keeps it, and the operator facts, so the same reconstruction scores alike at every level."""
    from conftest import compose

    from regbench.core.instantiate import build
    from regbench.datasets.bundled import SkimageImages
    from regbench.evaluation.metrics import image_metrics
    from regbench.probes import NoiseModel, OutOfDistribution

    task = build(compose("task=ct_parallel_ellipses", "profile=smoke").task.spec)
    assert task.max_pixel is None
    nominal = next(iter(Probe().samples(task, 0, 1, 64, 0, "cpu")))
    x_hat = nominal.x + 0.05 * torch.sin(torch.arange(nominal.x.numel()).reshape(nominal.x.shape).float())
    reference = image_metrics(x_hat, nominal.x, nominal.max_pixel)["psnr"]
    for level in (1, 2, 3):
        s = next(iter(NoiseModel().samples(task, level, 1, 64, 0, "cpu")))
        assert s.image_id == nominal.image_id and not torch.equal(s.y, nominal.y)
        assert s.max_pixel is None and s.operator == nominal.operator
        assert image_metrics(x_hat, s.x, s.max_pixel)["psnr"] == reference
    ood = next(iter(OutOfDistribution([SkimageImages()]).samples(task, 1, 1, 64, 0, "cpu")))
    assert ood.max_pixel is None and ood.operator == nominal.operator
