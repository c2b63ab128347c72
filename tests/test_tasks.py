"""The inverse-problem tasks: operators (adjoints, autograd through ODL), shapes,
noise levels, phantoms without the inverse crime, data downloads, config errors."""

import hashlib
import io
import json
import os
import zipfile

import h5py
import numpy as np
import pytest
import torch
from conftest import compose

from regbench.core.instantiate import build
from regbench.core.registry import known
from regbench.datasets import lodopab
from regbench.datasets.ct import CTTask, operators
from regbench.datasets.ellipses import EllipsePhantoms
from regbench.datasets.fastmri import FastMRIKnee
from regbench.datasets.images import DataMissingError
from regbench.datasets.mri import MRITask
from regbench.datasets.odl_bridge import OdlPhysics
from regbench.datasets.superres import SuperResolutionTask
from regbench.evaluation.metrics import image_metrics

needs_bsds = pytest.mark.skipif(not os.environ.get("REGBENCH_DATA"), reason="REGBENCH_DATA not set")
PREFIXES = ("denoise_", "ct_parallel_", "ct_fan_", "deblur_", "mri_", "sr_", "inpaint_")
INVERSE_TASKS = [t for t in known("task") if not t.startswith("denoise_")]
CROP = 48


def _task(name: str, profile: str = "smoke"):
    return build(compose(f"task={name}", f"profile={profile}").task.spec)


def _one(task, split="test", crop=CROP, seed=0, noise_scale=1.0, index=0):
    return list(task.samples(split, index + 1, crop, seed, "cpu", noise_scale=noise_scale))[index]


def test_every_task_name_has_a_known_prefix():
    assert {t.split("_")[0] for t in INVERSE_TASKS} >= {"ct", "deblur", "mri", "sr", "inpaint"}
    assert [t for t in known("task") if not t.startswith(PREFIXES)] == []


# -- operators ------------------------------------------------------------------
def _adjoint_gap(physics, x_like, y_like, trials=3) -> float:
    g = torch.Generator().manual_seed(0)
    worst = 0.0
    for _ in range(trials):
        x = torch.randn(x_like.shape, generator=g, dtype=torch.float64).to(x_like.dtype)
        y = torch.randn(y_like.shape, generator=g, dtype=torch.float64).to(y_like.dtype)
        lhs = float((physics.A(x).double() * y.double()).sum())
        rhs = float((x.double() * physics.A_adjoint(y).double()).sum())
        worst = max(worst, abs(lhs - rhs) / max(abs(lhs), abs(rhs)))
    return worst


@needs_bsds
@pytest.mark.parametrize("name", INVERSE_TASKS)
def test_every_task_operator_passes_the_adjoint_test(name):
    s = _one(_task(name))
    assert _adjoint_gap(s.physics, s.x, s.y) < 1e-4


@pytest.mark.parametrize("geometry", ["parallel", "fan"])
def test_ct_simulation_operator_on_the_finer_grid_passes_the_adjoint_test(geometry):
    ops = operators(geometry, 24, 12, 2, "astra_cpu", 2.0, 2.0, "Hann", 0.8)
    fine = OdlPhysics(ops["A_fine"])
    assert _adjoint_gap(fine, torch.zeros(1, 1, 48, 48), torch.zeros(1, 1, *ops["A_fine"].out_shape)) < 1e-4


@pytest.mark.parametrize("geometry", ["parallel", "fan"])
def test_gradients_through_the_odl_bridge_match_finite_differences(geometry):
    """float64 gradcheck on a tiny geometry; astra computes in float32, and central
    differences of a linear (and of a quadratic) map are exact for any step, so a
    large step keeps float32 rounding far below the tolerance."""
    ops = operators(geometry, 8, 5, 1, "astra_cpu", 2.0, 2.0, "Hann", 0.8)
    physics = OdlPhysics(ops["A"])
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 8, 8, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 1, *ops["A"].out_shape, generator=g, dtype=torch.float64, requires_grad=True)
    opts = dict(eps=0.5, atol=1e-5, rtol=1e-4)
    assert torch.autograd.gradcheck(physics.A, (x,), **opts)
    assert torch.autograd.gradcheck(physics.A_adjoint, (y,), **opts)
    target = physics.A(x.detach())
    assert torch.autograd.gradcheck(lambda z: ((physics.A(z) - target - 0.1) ** 2).sum(), (x,), **opts)


def test_ct_operator_is_normalized_to_unit_norm():
    ops = operators("parallel", 32, 20, 2, "astra_cpu", 2.0, 2.0, "Hann", 0.8)
    physics = OdlPhysics(ops["A"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        sq = float(physics.compute_sqnorm(torch.zeros(1, 1, 32, 32), max_iter=200, tol=1e-7, verbose=False))
    assert sq == pytest.approx(1.0, rel=1e-3)


# -- shapes, noise, initializers --------------------------------------------------
def _expected_shapes(name, task, n):
    if name.startswith("ct_"):
        det = operators(
            task.geometry,
            n,
            task.angles,
            task.oversample,
            "astra_cpu",
            task.src_radius,
            task.det_radius,
            task.fbp_filter,
            task.fbp_frequency_scaling,
        )["A"].out_shape[1]
        return (1, 1, n, n), (1, 1, task.angles, det)
    if name.startswith("mri_"):
        return (1, 1, n, n), (1, 2, n, n)
    if name.startswith("sr_"):
        return (1, 1, n, n), (1, 1, n // task.factor, n // task.factor)
    return (1, 1, n, n), (1, 1, n, n)


@needs_bsds
@pytest.mark.parametrize("name", INVERSE_TASKS)
def test_every_task_yields_the_documented_shapes_and_noise_level(name):
    """Noise = y - (the same measurement at noise scale 0): the operator is seeded
    independently of the noise. Its std over 12 images (> 6k entries) is the
    nominal one within 5%; entries the operator does not observe carry no noise."""
    task = _task(name)
    noise = []
    for i in range(12):
        s, clean = _one(task, index=i), _one(task, index=i, noise_scale=0.0)
        x_shape, y_shape = _expected_shapes(name, task, CROP)
        assert tuple(s.x.shape) == x_shape and tuple(s.y.shape) == y_shape and s.x0.shape == s.x.shape
        assert torch.equal(s.x, clean.x) and s.x0.isfinite().all()
        n = s.y - clean.y
        observed = torch.ones_like(n, dtype=torch.bool)
        if name.startswith(("mri_", "inpaint_")):
            observed = s.physics.mask.expand_as(n) > 0
            assert float(n[~observed].abs().max()) == 0.0 and float(s.y[~observed].abs().max()) == 0.0
        sigma = task.noise * float(clean.y.abs().mean()) if name.startswith("ct_") else task.sigma
        noise.append(n[observed] / sigma)
    assert float(torch.cat(noise).std()) == pytest.approx(1.0, rel=0.05)
    assert torch.cat(noise).numel() > 6_000


@needs_bsds
@pytest.mark.parametrize("name", INVERSE_TASKS)
def test_measurements_are_fixed_per_image_and_seed(name):
    task = _task(name)
    a, b, c = _one(task), _one(task), _one(task, seed=1)
    assert torch.equal(a.y, b.y) and not torch.equal(a.y, c.y)


@needs_bsds
@pytest.mark.parametrize("name", INVERSE_TASKS)
def test_initializer_is_closer_to_the_truth_than_zero(name):
    s = _one(_task(name))
    assert (
        image_metrics(s.x0, s.x, s.max_pixel)["psnr"]
        > image_metrics(torch.zeros_like(s.x), s.x, s.max_pixel)["psnr"] + 2
    )


def test_ct_metrics_use_each_ground_truths_range():
    x = torch.linspace(0.2, 2.2, 64).view(1, 1, 8, 8)
    x_hat = x + 0.02
    assert image_metrics(x_hat, x, None)["psnr"] == pytest.approx(20 * np.log10(2.0 / 0.02), abs=1e-3)
    assert image_metrics(x_hat, x)["psnr"] == pytest.approx(20 * np.log10(1.0 / 0.02), abs=1e-3)


# -- CT data -----------------------------------------------------------------------
def test_ellipse_phantoms_are_fixed_per_split_and_id_and_render_at_any_size():
    a, b = EllipsePhantoms("test", 4, size=32), EllipsePhantoms("calib", 4, size=32)
    img = a.load(a.ids()[0])
    assert img.shape == (1, 32, 32) and float(img.min()) >= 0 and float(img.max()) <= 1
    assert torch.equal(img, EllipsePhantoms("test", 4, size=32).load(a.ids()[0]))
    assert not torch.equal(a.render(a.ids()[0], 32), b.render(b.ids()[0], 32))
    fine = a.render_fine(a.ids()[0], 64)
    assert torch.allclose(a.render(a.ids()[0], 32, oversample=2), torch.nn.functional.avg_pool2d(fine[None], 2)[0])


def _ct(oversample, noise=0.0):
    return CTTask(
        EllipsePhantoms("train", 2, 32),
        EllipsePhantoms("calib", 2, 32),
        EllipsePhantoms("test", 2, 32),
        angles=20,
        size=32,
        noise=noise,
        oversample=oversample,
    )


def test_ct_data_are_simulated_off_the_reconstruction_grid():
    """No inverse crime: the noise-free sinogram is not A x (it comes from a 2x finer
    grid), while with oversample=1 it is exactly A x."""
    s = _one(_ct(2), crop=None)
    gap = float((s.y - s.physics.A(s.x)).norm() / s.y.norm())
    assert 1e-3 < gap < 0.1
    s1 = _one(_ct(1), crop=None)
    assert float((s1.y - s1.physics.A(s1.x)).norm() / s1.y.norm()) < 1e-6


def test_ct_crop_sets_the_reconstruction_size_up_to_the_task_size():
    task = _ct(2, noise=0.05)
    assert _one(task, crop=16).x.shape[-1] == 16 and _one(task, crop=None).x.shape[-1] == 32
    assert _one(task, crop=64).x.shape[-1] == 32


def test_ct_task_refuses_bad_settings_in_one_line():
    with pytest.raises(ValueError, match=r"task.geometry='cone' is not allowed; allowed: parallel, fan"):
        CTTask(None, None, None, geometry="cone")
    with pytest.raises(ValueError, match=r"task.src_radius=1.0 is not allowed"):
        CTTask(None, None, None, geometry="fan", src_radius=1.0)
    with pytest.raises(ValueError, match=r"task.noise=-0.1 is out of range"):
        CTTask(None, None, None, noise=-0.1)


def test_other_tasks_refuse_bad_settings_in_one_line():
    with pytest.raises(ValueError, match=r"task.filter='lanczos' is not allowed; allowed: bicubic"):
        SuperResolutionTask(0.01, None, None, None, filter="lanczos")
    with pytest.raises(ValueError, match=r"task.center_fraction=0.5 is not allowed"):
        MRITask(0.01, None, None, None, acceleration=4, center_fraction=0.5)


def _lodopab_record(tmp_path, corrupt=False):
    h5 = io.BytesIO()
    with h5py.File(h5, "w") as f:
        f["data"] = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    archive = tmp_path / "ground_truth_test.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ground_truth_test_000.hdf5", h5.getvalue())
    md5 = "0" * 32 if corrupt else hashlib.md5(archive.read_bytes()).hexdigest()
    record = tmp_path / "record.json"
    record.write_text(
        json.dumps(
            {"files": [{"key": "ground_truth_test.zip", "checksum": f"md5:{md5}", "links": {"self": archive.as_uri()}}]}
        )
    )
    return record.as_uri()


def test_lodopab_downloads_from_its_record_and_checks_the_md5(tmp_path, monkeypatch):
    root = tmp_path / "data"
    monkeypatch.setattr(lodopab, "RECORD", _lodopab_record(tmp_path, corrupt=True))
    with pytest.raises(DataMissingError, match=r"has md5 .* the record says 0{32}"):
        lodopab.LoDoPaB("test", root=str(root))
    assert not list((root / "LoDoPaB-CT").iterdir())  # nothing unchecked left behind
    monkeypatch.setattr(lodopab, "RECORD", _lodopab_record(tmp_path))
    data = lodopab.LoDoPaB("test", root=str(root))
    assert data.ids() == ["000-000", "000-001", "000-002"] and data.load("000-001").shape == (1, 16, 16)
    assert sorted(p.name for p in (root / "LoDoPaB-CT").iterdir()) == ["ground_truth_test_000.hdf5"]
    task = CTTask(data, data, data, angles=10, size=12, noise=0.05)  # LoDoPaB slices as CT test data
    s = _one(task, crop=None)
    assert s.x.shape == (1, 1, 12, 12) and s.y.shape[:3] == (1, 1, 10) and s.x0.shape == s.x.shape


def test_lodopab_missing_without_download_names_the_fix(tmp_path):
    with pytest.raises(DataMissingError) as err:
        lodopab.LoDoPaB("calib", root=str(tmp_path), download=False)
    msg = str(err.value)
    assert "ground_truth_validation" in msg and "10.5281/zenodo.3384092" in msg and len(msg.splitlines()) == 1


def test_fastmri_reads_central_slices_and_explains_how_to_get_the_data(tmp_path):
    with pytest.raises(DataMissingError, match=r"fastmri.med.nyu.edu"):
        FastMRIKnee("val", root=str(tmp_path))
    folder = tmp_path / "fastMRI" / "singlecoil_val"
    folder.mkdir(parents=True)
    with h5py.File(folder / "file1000.h5", "w") as f:
        f["reconstruction_esc"] = np.arange(5 * 8 * 8, dtype=np.float32).reshape(5, 8, 8) + 1
    data = FastMRIKnee("val", slices=3, root=str(tmp_path))
    assert data.ids() == ["file1000-01", "file1000-02", "file1000-03"]
    x = data.load("file1000-02")
    assert x.shape == (1, 8, 8) and float(x.max()) == pytest.approx(1.0)


@needs_bsds
def test_inpainting_fill_initializer_keeps_observed_pixels_and_fills_the_rest():
    """`fill` equals A^T y where observed; where missing it is a local mean of observed
    neighbours, far closer to the truth than the zeros of A^T y (`initializer: zeros`)."""
    task = _task("inpaint_50_bsd68")
    s = _one(task)
    observed = s.physics.mask.expand_as(s.x) > 0
    assert torch.equal(s.x0[observed], s.physics.A_adjoint(s.y)[observed])
    missing = s.x0[~observed]
    assert float(missing.min()) >= float(s.y.min()) - 1e-6 and float(missing.max()) <= float(s.y.max()) + 1e-6
    task.init_kind = "zeros"
    zeros = task.initializer(s.y, s.physics)
    assert torch.equal(zeros, s.physics.A_adjoint(s.y))
    fill_psnr = image_metrics(s.x0, s.x, s.max_pixel)["psnr"]
    assert fill_psnr > image_metrics(zeros, s.x, s.max_pixel)["psnr"] + 10, fill_psnr
    with pytest.raises(ValueError, match="task.initializer='median' is not allowed"):
        type(task)(missing=0.5, sigma=0.01, train=task.train, calib=task.calib, test=task.test, initializer="median")


def test_metrics_are_computed_in_float64_whatever_the_input_precision():
    """SSIM's local variances cancel in low precision (TF32 on CUDA read 0.02 low): image_metrics
    casts to float64, so bfloat16 inputs score as their exact float64 values do."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 64, 64, generator=g).cumsum(-1) / 64  # smooth ramps, not white noise
    y = (x + 0.05 * torch.randn(x.shape, generator=g)).to(torch.bfloat16)
    low, exact = image_metrics(y, x.to(torch.bfloat16)), image_metrics(y.double(), x.to(torch.bfloat16).double())
    assert low["ssim"] == pytest.approx(exact["ssim"], abs=1e-9) and low["psnr"] == pytest.approx(
        exact["psnr"], abs=1e-9
    )


def test_ct_backend_falls_back_from_astra_cpu_to_cuda_then_skimage_with_a_warning(monkeypatch):
    """An astra build with CUDA only (seen on an H100 machine) must not send CPU tensors to
    skimage, whose back-projection is not the exact adjoint; skimage is the last resort."""
    from odl.applications import tomo

    from regbench.datasets.ct import backend

    monkeypatch.setattr(tomo, "ASTRA_AVAILABLE", False)
    monkeypatch.setattr(tomo, "ASTRA_CUDA_AVAILABLE", True)
    assert backend("cpu", "fan") == "astra_cuda"
    monkeypatch.setattr(tomo, "ASTRA_CUDA_AVAILABLE", False)
    monkeypatch.setattr(tomo, "SKIMAGE_AVAILABLE", True)
    with pytest.warns(UserWarning, match="not the exact adjoint"):
        assert backend("cpu", "parallel") == "skimage"
    with pytest.raises(RuntimeError, match="no ODL ray-transform backend for fan beam"):
        backend("cpu", "fan")
    monkeypatch.setattr(tomo, "ASTRA_AVAILABLE", True)
    assert backend("cpu", "fan") == "astra_cpu" and backend("cuda", "fan") == "astra_cpu"
