"""Stability probes: operator_mismatch, worst_case, noise_decay, convergence evidence, plots, summaries.

Each probe changes the data exactly as stated; level 0 is the nominal task bit for bit. Tiny sizes only.
"""

import functools
import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

from regbench.evaluation.reconstruct import Reconstruction
from regbench.probes import NoiseDecay, OperatorMismatch, Probe, WorstCase
from regbench.solvers.options import SolverOptions, solver_options

needs_data = pytest.mark.skipif(not os.environ.get("REGBENCH_DATA"), reason="REGBENCH_DATA not set")


def _bsds(split):
    from regbench.datasets.bsds500 import BSDS500

    return BSDS500(split)


def _kernel_std(k: torch.Tensor) -> float:
    k = k[0, 0].double()
    r = torch.arange(k.shape[-1], dtype=torch.float64) - k.shape[-1] // 2
    return float((k.sum(0) * r**2).sum().sqrt())  # std along one axis of a normalized kernel


# -- operator_mismatch ----------------------------------------------------------------------
def test_ct_mismatch_jitters_the_angles_and_shifts_the_detector_as_stated():
    from odl.applications import tomo

    from regbench.datasets.ct import CTTask, OdlLinear, _astra_parallel_vec, _space, make_geometry, perturbed_geometry
    from regbench.datasets.ellipses import EllipsePhantoms

    sets = [EllipsePhantoms(s, 2, 32) for s in ("train", "calib", "test")]
    task = CTTask(*sets, angles=30, size=32, impl="astra_cpu")
    image = task.test.ids()[0]
    nominal = make_geometry("parallel", 32, 30)
    cell = nominal.det_partition.cell_sides[0]
    diffs = {}
    for level in (-1, 1, 2):
        g = task.mismatch_geometry(32, "test", image, 0, level)
        diffs[level] = np.rad2deg(g.angles - nominal.angles)  # read back from the perturbed geometry
        assert np.abs(diffs[level]).max() <= 0.7 * abs(level) + 1e-9 and np.abs(diffs[level]).max() > 0.5 * abs(level)
        offset = (g.det_partition.min_pt - nominal.det_partition.min_pt)[0] / cell
        assert offset == pytest.approx(0.5 * level)
    np.testing.assert_allclose(diffs[2], 2 * diffs[1])
    np.testing.assert_allclose(diffs[-1], diffs[1])
    # astra's CPU parallel beam takes the shift through a parallel_vec geometry: no perturbation = the nominal
    # operator, a one-pixel shift = the nominal sinogram moved by one detector pixel
    fine = task._fine("test", image, 32)
    ops = task.operators(32)
    reference = ops["A_fine"].apply(fine)

    def simulate(offset):
        g = perturbed_geometry(nominal, np.zeros(30), offset)
        g.implementation_cache["astra_cpu"] = _astra_parallel_vec(g)
        return OdlLinear(tomo.RayTransform(_space(64), g, impl="astra_cpu"), ops["A_fine"].scale).apply(fine)

    torch.testing.assert_close(simulate(0.0), reference, rtol=0, atol=1e-5 * float(reference.abs().max()))
    torch.testing.assert_close(
        simulate(cell)[..., :-1], reference[..., 1:], rtol=0, atol=1e-5 * float(reference.abs().max())
    )
    # samples: level 0 is the nominal task bit for bit; a mismatch keeps the nominal physics and noise std
    probe = OperatorMismatch()
    base = list(Probe().samples(task, 0, 1, 32, 0, "cpu"))[0]
    zero = list(probe.samples(task, 0, 1, 32, 0, "cpu"))[0]
    off = list(probe.samples(task, 1, 1, 32, 0, "cpu"))[0]
    assert torch.equal(base.y, zero.y) and torch.equal(base.x0, zero.x0)
    assert not torch.equal(base.y, off.y) and off.physics.noise_model.sigma == base.physics.noise_model.sigma


@needs_data
def test_deblur_mismatch_scales_the_kernel_width_and_keeps_the_noise():
    from deepinv.physics import BlurFFT
    from deepinv.physics.generator import GaussianBlurGenerator

    from regbench.datasets.deblur import DeblurTask

    kernels = functools.partial(GaussianBlurGenerator, psf_size=(25, 25), sigma_min=1.6, sigma_max=1.6, isotropic=True)
    task = DeblurTask(
        kernels, 0.01, _bsds("val_not68"), _bsds("val_not68"), _bsds("bsd68"), name="deblur_gaussian_bsd68"
    )
    rng = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    nominal = task.kernel(rng(), "cpu")
    for level, factor in ((-1, 0.8), (1, 1.2), (2, 1.4)):
        assert _kernel_std(task.kernel(rng(), "cpu", factor)) / _kernel_std(nominal) == pytest.approx(factor, rel=0.01)
    x = list(Probe().samples(task, 0, 1, 32, 0, "cpu"))[0].x
    y0, physics, x0 = task.measure(x, "test", "id", 0)
    assert torch.equal(task.initialize(y0, physics), x0)  # probes re-initialize with the task's own initializer
    y1, physics1, _ = task.measure(x, "test", "id", 0, mismatch=1)
    wide = BlurFFT(img_size=(1, 32, 32), filter=task.kernel(rng(), "cpu", 1.2))
    torch.testing.assert_close(physics1.filter, physics.filter)  # the reconstruction operator stays nominal
    torch.testing.assert_close(y1 - wide.A(x), y0 - physics.A(x), atol=1e-6, rtol=0)  # same noise realization
    nominal_rows = list(Probe().samples(task, 0, 2, 32, 0, "cpu"))
    level0 = list(OperatorMismatch().samples(task, 0, 2, 32, 0, "cpu"))
    assert all(torch.equal(a.y, b.y) for a, b in zip(nominal_rows, level0))


@needs_data
def test_mri_mismatch_shifts_the_sampled_lines_by_exactly_one():
    from regbench.datasets.mri import MRITask, RealImageMRI

    task = MRITask(0.01, _bsds("val_not68"), _bsds("val_not68"), _bsds("bsd68"), name="mri_x4_bsd68")
    s = list(Probe().samples(task, 0, 1, 32, 0, "cpu"))[0]
    y1, physics1, _ = task.measure(s.x, "test", s.image_id, 0, mismatch=1)
    mask = s.physics.mask
    shifted = task.shifted_mask(mask, 1)
    assert torch.equal(shifted[..., 1:], mask[..., :-1]) and not torch.equal(shifted, mask)
    full = RealImageMRI(mask=torch.ones_like(mask), img_size=(32, 32)).A(s.x)
    expected = torch.roll(shifted * full, -1, dims=-1)  # the lines at c + 1, filed under the nominal c
    torch.testing.assert_close(y1 - expected, s.y - s.physics.A(s.x), atol=1e-6, rtol=0)  # same noise
    assert torch.equal(physics1.mask, mask)


def test_operator_mismatch_is_rejected_for_tasks_without_a_model():
    from conftest import compose

    from regbench.core.validate import ConfigError, validate
    from regbench.datasets.denoising import DenoisingTask

    assert "DenoisingTask has none" in OperatorMismatch.incompatible(DenoisingTask)
    with pytest.raises(ConfigError, match="incompatible probe x task pair: operator_mismatch x denoise_bsd68"):
        validate(compose("task=denoise_bsd68", "probe=operator_mismatch", "profile=smoke"))
    validate(compose("task=mri_x4_bsd68", "probe=operator_mismatch", "profile=smoke"))
    validate(compose("task=denoise_bsd68", "probe=worst_case", "profile=smoke"))


# -- worst_case -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def denoise_task():
    from regbench.datasets.denoising import DenoisingTask

    return DenoisingTask(25, _bsds("val_not68"), _bsds("val_not68"), _bsds("bsd68"))


def _attack(method, task, eps, options=SolverOptions(), hyper=None, steps=4, unroll=2, crop=32):
    probe = WorstCase(levels=[0, eps], steps=steps, unroll=unroll)
    s = list(probe.samples(task, eps, 1, crop, 0, "cpu"))[0]
    recon = Reconstruction(method, hyper or {}, options)
    attacked = probe.adapt(recon, task, s, eps, 0)
    assert float((attacked.y - s.y).norm()) == pytest.approx(eps * float(s.y.norm()), rel=1e-4)
    x_hat, _ = recon(attacked)
    return probe.extra(recon, task, attacked, x_hat, 0)


@needs_data
def test_worst_case_beats_random_on_an_unconstrained_network(denoise_task):
    """A DnCNN with random weights (a model of an unconstrained network, not a trained method)."""
    from deepinv.models import DnCNN

    from regbench.methods.base import Method

    class Network(Method):
        family = "denoiser"

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = DnCNN(1, 1, depth=4, nf=16, pretrained=None)

        def reconstruct(self, y, physics, x0, hyper, options):
            with torch.no_grad():
                return self.net(y), {}

        def differentiable_reconstruct(self, y, physics, x0, x_ref, hyper, options):
            return self.net(y)

    extra = _attack(Network(), denoise_task, 0.05)
    assert extra["attack"] == "gradient"
    assert extra["amplification"] > 1.2 * extra["random_amplification"] > 0


@needs_data
def test_worst_case_amplification_of_tv_stays_below_its_bound(denoise_task):
    """TV denoising is the prox of a convex function: 1-Lipschitz, so amplification <= 1."""
    from regbench.methods.tv import TV

    method = TV(prox_iters=400, prox_tol=1e-7)
    extra = _attack(method, denoise_task, 0.05, SolverOptions(tol=1e-6, max_iter=50), hyper={"lam": 0.07})
    assert extra["attack"] == "gradient"
    assert extra["random_amplification"] <= extra["amplification"] <= 1.0 + 0.02


def test_methods_without_a_differentiable_path_fall_back_to_random_search():
    from regbench.methods.base import Method

    class Box(Method):
        def reconstruct(self, y, physics, x0, hyper, options):
            return 0.5 * y, {}

    class Task:
        name = "toy"

        def initialize(self, y, physics):
            return y

    from regbench.datasets.task import Sample

    x = torch.rand(1, 1, 8, 8)
    probe = WorstCase(levels=[0, 0.1], steps=2)
    s = Sample("a", x, x + 0.1, None, x)
    recon = Reconstruction(Box(), {}, SolverOptions())
    attacked = probe.adapt(recon, Task(), s, 0.1, 0)
    extra = probe.extra(recon, Task(), attacked, recon(attacked)[0], 0)
    assert extra["attack"] == "random search" and extra["amplification"] == pytest.approx(0.5)
    assert np.isnan(probe.extra(recon, Task(), s, x, 0)["amplification"])  # level 0: nothing to report


# -- noise_decay and convergence evidence --------------------------------------------------------
@needs_data
def test_noise_decay_scales_noise_and_lambda_by_the_rule(denoise_task):
    from regbench.methods.ridge import CRR
    from regbench.methods.tv import TV

    probe = NoiseDecay()
    for level in (0, 2):
        noise = torch.cat([(s.y - s.x).flatten() for s in probe.samples(denoise_task, level, 2, 64, 0, "cpu")])
        assert float(noise.std()) == pytest.approx(25 / 255 * 2.0**-level, rel=0.05)
    tv, crr = TV(), CRR()
    tv_recon, crr_recon = (
        Reconstruction(m, hp, SolverOptions()) for m, hp in ((tv, {"lam": 0.08}), (crr, {"lam": 2.0}))
    )
    (tv_level, columns), (crr_level, _) = probe.solving(tv_recon, 2), probe.solving(crr_recon, 2)
    assert tv_level.hyper["lam"] == pytest.approx(0.02) and json.loads(columns["hyper_used"])["lam"] == pytest.approx(
        0.02
    )
    assert crr_level.hyper == {"lam": 0.5, "mu": 4.0}  # lambda ~ sigma, mu kept
    assert tv_recon.hyper == {"lam": 0.08} and crr.hp == CRR().hp  # nothing else changed


@needs_data
def test_rows_carry_energy_monotone_and_traces_are_saved(tmp_path):
    from conftest import run_of

    from regbench.core.instantiate import build
    from regbench.evaluation.runner import evaluate

    run = run_of(
        "method=tv",
        "probe=nominal",
        "profile=smoke",
        f"out={tmp_path}",
        "examples=0",
        "profile.data.n_test=2",
        "profile.data.test_crop=32",
        "progress=false",
        "convergence.energy=true",
    )
    task, method = build(run.task.spec), build(run.method.model)
    recon = Reconstruction(method, {"lam": 0.07}, solver_options(run.profile, run.method))
    common = {"method": "tv", "task": "denoise_bsd68", "probe": "nominal", "config_hash": "test", "seed": 0}
    rows = evaluate(run, recon, task, torch.device("cpu"), common)
    assert all(isinstance(r["energy_monotone"], bool) for r in rows)
    trace = json.loads((tmp_path / "traces" / "tv__denoise_bsd68__nominal.json").read_text())
    assert [t["image_id"] for t in trace["images"]] == [r["image_id"] for r in rows]
    for t, r in zip(trace["images"], rows):
        assert len(t["psnr"]) == r["iterations"] and t["psnr"][-1] == pytest.approx(r["psnr"], abs=1e-4)


# -- plots and summaries ------------------------------------------------------------------------
def _board():
    rows = []
    for method, slope in (("tv", 1.0), ("crr", 0.5)):
        for level in (0, 0.01, 0.03):
            for image in ("a", "b"):
                rows.append(
                    {
                        "task": "t",
                        "probe": "worst_case",
                        "level": level,
                        "method": method,
                        "image_id": image,
                        "psnr": 30 - 100 * slope * level,
                        "ssim": 0.9 - slope * level,
                        "seconds": 1.0,
                        "iterations": 5,
                        "params": 0,
                        "train_minutes": 0.0,
                        "converged": True,
                        "status": "ok",
                        "amplification": np.nan if level == 0 else slope * (2 if image == "a" else 1),
                        "random_amplification": np.nan if level == 0 else 0.1 * slope,
                        "energy_monotone": None if method == "tv" else True,
                    }
                )
    return pd.DataFrame(rows)


def test_degradation_plots_are_written_as_png(tmp_path):
    from PIL import Image

    from regbench.results import leaderboard
    from regbench.results.plots import write_plots

    paths = write_plots(leaderboard.aggregate(_board()), tmp_path)
    assert paths == [tmp_path / "plots" / "t__intervals.png", tmp_path / "plots" / "t__worst_case.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("L"), dtype=float)
        assert pixels.std() > 5 and (pixels < 128).mean() > 0.005  # curves and text, not a blank canvas


def test_probe_summary_reports_drop_auc_and_amplification():
    from regbench.results import leaderboard

    board = leaderboard.aggregate(_board())
    summary = leaderboard.probe_summary(board).set_index("method")
    assert summary.loc["tv", "amplification"] == pytest.approx(1.5)
    assert summary.loc["crr", "random_amplification"] == pytest.approx(0.05)
    assert summary.loc["tv", "drop_db"] == pytest.approx(2.0)
    assert summary.loc["crr", "psnr_worst"] == pytest.approx(28.5)
    assert board.set_index(["method", "level"]).loc[("crr", 0), "energy_monotone"] == 1.0
    assert "amplification" in leaderboard.to_markdown(board).split("## Probe summaries")[1]


def test_convergence_traces_are_plotted_per_task_with_the_nominal_probe_first(tmp_path):
    import json

    from PIL import Image

    from regbench.evaluation import convergence
    from regbench.results import leaderboard
    from regbench.results.plots import write_plots

    first, second = tmp_path / "a", tmp_path / "b"
    for folder, probe, start in ((first, "noise_sweep", 10.0), (first, "nominal", 20.0), (second, "nominal", 30.0)):
        (folder / "traces").mkdir(parents=True, exist_ok=True)
        images = [
            {"image_id": "x", "level": "0", "psnr": [start, start + 1, start + 1.5]},
            {"image_id": "x", "level": "1", "psnr": [0.0]},
        ]
        (folder / "traces" / f"crr__t__{probe}.json").write_text(
            json.dumps({"method": "crr", "task": "t", "probe": probe, "images": images})
        )
    traces = convergence.load_traces([first, second])
    assert traces == {
        "t": {"crr": [[20.0, 21.0, 21.5]]}
    }  # level 0 only; nominal before other probes; first folder wins

    paths = write_plots(leaderboard.aggregate(_board()), tmp_path / "out", [first, second])
    plot = tmp_path / "out" / "plots" / "t__convergence.png"
    assert plot in paths
    with Image.open(plot) as im:
        pixels = np.asarray(im.convert("L"), dtype=float)
    assert pixels.std() > 5 and (pixels < 128).mean() > 0.005


def test_probe_summary_table_puts_each_family_headline_side_by_side():
    from probe_summary import summary

    base = {
        "task": "t",
        "method": "crr",
        "image_id": "a",
        "ssim": 0.8,
        "seconds": 1.0,
        "iterations": 5,
        "params": 0,
        "train_minutes": 0.0,
        "converged": True,
        "status": "ok",
    }
    levels = {
        "noise_sweep": {0: 30.0, 1: 27.0, 2: 20.0, -1: 32.0},
        "noise_decay": {0: 30.0, 1: 31.0, 2: 33.0, 3: 34.5},
        "ood": {0: 30.0, 1: 31.0, 2: 25.0},
        "noise_model": {0: 30.0, 1: 28.0, 2: 24.0, 3: 29.0},
    }
    rows = [
        {**base, "probe": p, "level": lvl, "psnr": v, "energy_monotone": lvl != 2}
        for p, per in levels.items()
        for lvl, v in per.items()
    ]
    rows += [
        {
            **base,
            "probe": "worst_case",
            "level": lvl,
            "psnr": 30.0 - lvl,
            "energy_monotone": True,
            "amplification": amp,
            "random_amplification": amp / 4,
        }
        for lvl, amp in ((0, np.nan), (0.01, 0.6), (0.03, 0.8))
    ]
    table = summary(pd.DataFrame(rows), ["crr", "dps"]).splitlines()
    crr = next(line for line in table if line.startswith("| crr |")).split(" | ")
    assert crr[1:6] == ["30.00", "3.00 / 10.00", "30.00 -> 34.50 up", "3.00", "-1.00 / 5.00"]
    assert crr[6:8] == ["–", "0.80 (0.20)"]  # no operator mismatch measured; the largest amplification
    assert crr[-1].startswith("78% of 18")  # 14 of the 18 rows never increased their energy
    assert next(line for line in table if line.startswith("| dps |")).count("–") == 9  # a method without rows
