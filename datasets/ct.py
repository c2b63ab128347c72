"""Tasks `ct_parallel_*` and `ct_fan_*`: 2D computed tomography through ODL.

Operator: ODL's RayTransform on the square [-1, 1]^2 (astra-toolbox: CUDA backend
when the data live on a GPU and astra has CUDA, else astra's CPU backend; ODL's
scikit-image backend for parallel beam when astra is missing), bridged to torch
by `odl_bridge`, divided by its norm (power iteration, once per geometry) so that
||A|| = 1 and regularization weights stay on the scale of denoising.
Parallel beam: `parallel_beam_geometry` (angles over [0, pi)); fan beam: flat
detector, full circle, source and detector at `src_radius`/`det_radius`.
One ODL code path serves both geometries (same discretization, exact matched
transpose from astra, CUDA when present), which is why deepinv's Tomography
(grid_sample interpolation, a different discretization per geometry) is not used.

Data: phantoms rendered at the reconstruction size r (the profile's crop, at most
`size`). No inverse crime: the ground truth is the pixel average of the phantom
sampled `oversample` times finer, and the sinogram is simulated by the ray
transform of that finer grid (same geometry and detector), so the data are never
in the range of the reconstruction operator. Square images that cannot be
rendered (e.g. LoDoPaB) are resized from their native grid to r (area average)
and, for the simulation, to r * oversample (area, or bilinear when upsampling).

Noise: white Gaussian on the sinogram with std `noise` times the mean absolute
value of the clean sinogram (DIVal's relative noise), fixed per (task, split,
image, seed). Initializer: filtered back-projection (Hann filter). Metric data
range: each ground truth's own [min, max].
"""
from __future__ import annotations

import functools
import math

import numpy as np
import odl
import torch
import torch.nn.functional as F
from deepinv.physics import GaussianNoise
from odl.applications import tomo

from benchmark.hashing import stable_seed
from regbench_datasets.images import ImageSet
from regbench_datasets.odl_bridge import OdlLinear, OdlPhysics
from regbench_datasets.task import Task

GEOMETRIES = ("parallel", "fan")
NORM_ITERS = 50


def backend(device: torch.device | str | None = None, geometry: str = "parallel") -> str:
    """Which ODL ray-transform backend to use, with a fix when none fits."""
    on_gpu = torch.device(device or "cpu").type == "cuda"
    if on_gpu and tomo.ASTRA_CUDA_AVAILABLE:
        return "astra_cuda"
    if tomo.ASTRA_AVAILABLE:
        return "astra_cpu"
    if geometry == "parallel" and tomo.SKIMAGE_AVAILABLE:
        return "skimage"
    raise RuntimeError(f"no ODL ray-transform backend for {geometry} beam: install astra-toolbox (pip install astra-toolbox)")


def _space(size: int):
    return odl.uniform_discr([-1, -1], [1, 1], (size, size), dtype="float32")


def make_geometry(geometry: str, size: int, angles: int, src_radius: float = 2.0, det_radius: float = 2.0):
    if geometry not in GEOMETRIES:
        raise ValueError(f"task.geometry={geometry!r} is not allowed; allowed: {', '.join(GEOMETRIES)}")
    if not (isinstance(angles, int) and angles >= 1):
        raise ValueError(f"task.angles={angles!r} is not allowed; allowed: an integer >= 1")
    space = _space(size)
    parallel = tomo.parallel_beam_geometry(space, num_angles=angles)
    if geometry == "parallel":
        return parallel
    if src_radius <= math.sqrt(2):
        raise ValueError(f"task.src_radius={src_radius!r} is not allowed; allowed: > sqrt(2) (the source must stay outside the image square)")
    # flat detector with as many pixels as the parallel one: about one image pixel per detector pixel at the object
    return tomo.cone_beam_geometry(space, src_radius, det_radius, num_angles=angles, det_shape=parallel.detector.shape[0])


@functools.lru_cache(maxsize=32)
def operators(geometry: str, size: int, angles: int, oversample: int, impl: str, src_radius: float, det_radius: float,
              fbp_filter: str, fbp_frequency_scaling: float) -> dict:
    """The reconstruction operator (normalized), the finer simulation operator (same
    normalization) and the FBP, for one geometry at one size (cached)."""
    geom = make_geometry(geometry, size, angles, src_radius, det_radius)
    coarse = tomo.RayTransform(_space(size), geom, impl=impl)
    scale = 1.0 / operator_norm(OdlLinear(coarse))
    fine = tomo.RayTransform(_space(size * oversample), geom, impl=impl) if oversample > 1 else coarse
    fbp = tomo.fbp_op(coarse, filter_type=fbp_filter, frequency_scaling=fbp_frequency_scaling)
    return {"A": OdlLinear(coarse, scale), "A_fine": OdlLinear(fine, scale), "fbp": OdlLinear(fbp, 1.0 / scale)}


def operator_norm(op: OdlLinear, iters: int = NORM_ITERS) -> float:
    """||A||_2 by power iteration on A^T A (fixed start, so the normalization is reproducible)."""
    x = np.random.default_rng(0).standard_normal(op.in_shape).astype(np.float32)
    sq = 0.0
    for _ in range(iters):
        x /= np.linalg.norm(x)
        x = op.transpose_np(op.forward_np(x))
        sq = float(np.linalg.norm(x))
    return math.sqrt(sq)


class CTTask(Task):
    kind = "ct"
    max_pixel = None  # PSNR/SSIM on each ground truth's own range

    def __init__(self, train: ImageSet, calib: ImageSet, test: ImageSet, name: str = "ct", geometry: str = "parallel",
                 angles: int = 60, size: int = 128, noise: float = 0.05, oversample: int = 2, impl: str | None = None,
                 src_radius: float = 2.0, det_radius: float = 2.0, fbp_filter: str = "Hann", fbp_frequency_scaling: float = 1.0):
        if not noise >= 0:
            raise ValueError(f"task.noise={noise!r} is out of range; allowed: a relative noise level >= 0")
        if not (isinstance(oversample, int) and oversample >= 1):
            raise ValueError(f"task.oversample={oversample!r} is not allowed; allowed: an integer >= 1 (2 or more avoids the inverse crime)")
        make_geometry(geometry, 8, angles, src_radius, det_radius)  # fail on bad geometry keys now, not mid-sweep
        super().__init__(name=name, train=train, calib=calib, test=test)
        self.geometry, self.angles, self.size, self.noise = geometry, angles, int(size), float(noise)
        self.oversample, self.impl = oversample, impl
        self.src_radius, self.det_radius = float(src_radius), float(det_radius)
        self.fbp_filter, self.fbp_frequency_scaling = fbp_filter, float(fbp_frequency_scaling)
        self._fine = functools.lru_cache(maxsize=4)(self._render_fine)

    def resolution(self, crop: int | None) -> int:
        """The reconstruction grid: the profile's crop sets the resolution (a cropped
        phantom would leave the scanner's field of view), at most `size`."""
        return min(crop or self.size, self.size)

    def operators(self, size: int, device=None) -> dict:
        return operators(self.geometry, size, self.angles, self.oversample, self.impl or backend(device, self.geometry),
                         self.src_radius, self.det_radius, self.fbp_filter, self.fbp_frequency_scaling)

    def _render_fine(self, split: str, image_id: str, size: int) -> torch.Tensor:
        images = self.split(split)
        n = size * self.oversample
        if hasattr(images, "render_fine"):
            return images.render_fine(image_id, n)
        x = images.load(image_id).unsqueeze(0)
        if n <= x.shape[-1]:
            return F.interpolate(x, size=(n, n), mode="area")[0]
        return F.interpolate(x, size=(n, n), mode="bilinear", align_corners=False)[0]

    def image(self, split: str, image_id: str, crop: int | None) -> torch.Tensor:
        r = self.resolution(crop)
        images = self.split(split)
        if hasattr(images, "render_fine"):
            return F.avg_pool2d(self._fine(split, image_id, r).unsqueeze(0), self.oversample)[0]
        return F.interpolate(images.load(image_id).unsqueeze(0), size=(r, r), mode="area")[0]

    def physics(self, size: int, sigma: float, seed: int, device) -> OdlPhysics:
        ops = self.operators(size, device)
        rng = torch.Generator(device=device).manual_seed(seed)
        physics = OdlPhysics(ops["A"], pseudo_inverse=ops["fbp"], noise_model=GaussianNoise(sigma=sigma, rng=rng)).to(device)
        physics.data_lipschitz = 1.0  # ||A|| = 1 by construction (normalized by its power-iteration norm)
        return physics

    def measure(self, x: torch.Tensor, split: str, image_id: str, seed: int, noise_scale: float = 1.0):
        size = x.shape[-1]
        if x.shape[-2] != size:
            raise ValueError(f"CT task {self.name}: images must be square, got {tuple(x.shape[-2:])}")
        fine = self._fine(split, image_id, size) if self.oversample > 1 else x[0]
        clean = self.operators(size, x.device)["A_fine"].apply(fine.to(x)).unsqueeze(0)  # (1, 1, angles, detectors)
        sigma = self.noise * noise_scale * float(clean.abs().mean())
        physics = self.physics(size, sigma, stable_seed(self.name, split, image_id, seed), x.device)
        y = physics.noise(clean)
        return y, physics, physics.A_dagger(y)

    def describe(self) -> dict:
        return {**super().describe(), "geometry": self.geometry, "angles": self.angles, "size": self.size,
                "noise": self.noise, "oversample": self.oversample}
