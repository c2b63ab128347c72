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

Operator mismatch (level l): the sinogram is simulated with every angle jittered by
0.7 |l| u_i degrees (u_i ~ U[-1, 1], drawn once per image, as in the stability
benchmark of Denker et al.) and the detector shifted by l/2 detector pixels along its
axis; the noise (std and realization) and the reconstruction operator stay nominal.
astra's CPU backend ignores detector shifts in its plain parallel-beam geometry, so
the shifted parallel geometry is handed to it as a `parallel_vec` geometry
(`_astra_parallel_vec`; checked against the nominal operator in the tests).
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import odl
import torch
import torch.nn.functional as F
from deepinv.physics import GaussianNoise
from odl.applications import tomo

from regbench.core.hashing import stable_seed
from regbench.datasets.images import ImageSet, center_crop
from regbench.datasets.odl_bridge import OdlLinear, OdlPhysics
from regbench.datasets.task import SPLITS, Task

GEOMETRIES = ("parallel", "fan")
NORM_ITERS = 50


def backend(device: torch.device | str | None = None, geometry: str = "parallel") -> str:
    """Which ODL ray-transform backend to use, with a fix when none fits."""
    on_gpu = torch.device(device or "cpu").type == "cuda"
    if on_gpu and tomo.ASTRA_CUDA_AVAILABLE:
        return "astra_cuda"
    if tomo.ASTRA_AVAILABLE:
        return "astra_cpu"
    if tomo.ASTRA_CUDA_AVAILABLE:  # an astra build with CUDA only (seen on an H100 machine): host arrays work too
        return "astra_cuda"
    if geometry == "parallel" and tomo.SKIMAGE_AVAILABLE:
        warnings.warn(
            "CT parallel beam on ODL's skimage backend: its back-projection is not the exact adjoint "
            "(adjoint test gap about 0.3, measured); install astra-toolbox for results comparable to the leaderboard"
        )
        return "skimage"
    raise RuntimeError(
        f"no ODL ray-transform backend for {geometry} beam: install astra-toolbox (pip install astra-toolbox)"
    )


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
        raise ValueError(
            f"task.src_radius={src_radius!r} is not allowed; allowed: > sqrt(2) (the source must stay "
            "outside the image square)"
        )
    # flat detector with as many pixels as the parallel one: about one image pixel per detector pixel at the object
    return tomo.cone_beam_geometry(
        space, src_radius, det_radius, num_angles=angles, det_shape=parallel.detector.shape[0]
    )


@functools.lru_cache(maxsize=32)
def operators(
    geometry: str,
    size: int,
    angles: int,
    oversample: int,
    impl: str,
    src_radius: float,
    det_radius: float,
    fbp_filter: str,
    fbp_frequency_scaling: float,
) -> dict:
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


def perturbed_geometry(geom, jitter: np.ndarray, offset: float):
    """`geom` with its angles moved by `jitter` (radians, one per angle) and its detector shifted by
    `offset` (in detector units) along its axis."""
    angles = geom.angles + jitter
    if np.any(np.diff(angles) <= 0):
        raise ValueError("operator mismatch: the angle jitter reorders the angles; use smaller levels")
    apart = odl.nonuniform_partition(angles)
    d = geom.det_partition
    dpart = odl.uniform_partition(d.min_pt + offset, d.max_pt + offset, d.shape)
    if isinstance(geom, tomo.Parallel2dGeometry):
        return tomo.Parallel2dGeometry(apart, dpart, det_pos_init=geom.det_pos_init)
    return tomo.FanBeamGeometry(
        apart,
        dpart,
        geom.src_radius,
        geom.det_radius,
        src_to_det_init=geom.src_to_det_init,
        det_axis_init=geom.det_axis_init,
    )


def _astra_parallel_vec(geom) -> dict:
    """astra's `parallel_vec` geometry of an ODL 2D parallel geometry (rows: ray, detector centre, pixel
    vector), in the rotated frame ODL's astra backend uses; honours detector shifts."""
    import astra

    rot = np.array([[0.0, 1.0], [-1.0, 0.0]])  # rotation by -90 degrees, as ODL's astra_conebeam_2d_geom_to_vec
    angles, mid = geom.angles, float(geom.det_params.mid_pt[0])
    vec = np.zeros((angles.size, 6))
    vec[:, 0:2] = (rot @ (-geom.det_to_src(angles, mid)).T).T
    vec[:, 2:4] = (rot @ geom.det_point_position(angles, mid).T).T
    vec[:, 4:6] = (rot @ geom.det_axis(angles).T).T * geom.det_partition.cell_sides[0]
    return astra.create_proj_geom("parallel_vec", geom.detector.size, vec)


class CTTask(Task):
    kind = "ct"
    operator_sqnorm = 1.0  # ||A|| = 1 by construction (normalized by its power-iteration norm)
    max_pixel = None  # PSNR/SSIM on each ground truth's own range
    mismatch = "angles jittered by U[-0.7, 0.7] x |level| degrees, detector shifted by level/2 pixels"
    jitter_deg, offset_px = 0.7, 0.5  # per unit of level

    def __init__(
        self,
        train: ImageSet,
        calib: ImageSet,
        test: ImageSet,
        name: str = "ct",
        geometry: str = "parallel",
        angles: int = 60,
        size: int = 128,
        noise: float = 0.05,
        oversample: int = 2,
        impl: str | None = None,
        src_radius: float = 2.0,
        det_radius: float = 2.0,
        fbp_filter: str = "Hann",
        fbp_frequency_scaling: float = 1.0,
    ):
        if not noise >= 0:
            raise ValueError(f"task.noise={noise!r} is out of range; allowed: a relative noise level >= 0")
        if not (isinstance(oversample, int) and oversample >= 1):
            raise ValueError(
                f"task.oversample={oversample!r} is not allowed; allowed: an integer >= 1 (2 or more "
                "avoids the inverse crime)"
            )
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
        return operators(
            self.geometry,
            size,
            self.angles,
            self.oversample,
            self.impl or backend(device, self.geometry),
            self.src_radius,
            self.det_radius,
            self.fbp_filter,
            self.fbp_frequency_scaling,
        )

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

    def foreign_image(self, x: torch.Tensor, crop: int | None) -> torch.Tensor:
        """Probe `ood`: the largest centred square of the image, area-resampled to the reconstruction grid."""
        r = self.resolution(crop)
        return F.interpolate(center_crop(x, min(x.shape[-2:])).unsqueeze(0), size=(r, r), mode="area")[0]

    def physics(self, size: int, sigma: float, seed: int, device) -> OdlPhysics:
        ops = self.operators(size, device)
        rng = torch.Generator(device=device).manual_seed(seed)
        physics = OdlPhysics(ops["A"], pseudo_inverse=ops["fbp"], noise_model=GaussianNoise(sigma=sigma, rng=rng)).to(
            device
        )
        return physics

    def mismatch_geometry(self, size: int, split: str, image_id: str, seed: int, level):
        """The perturbed geometry of operator_mismatch at `level` (jitter drawn once per image)."""
        nominal = make_geometry(self.geometry, size, self.angles, self.src_radius, self.det_radius)
        u = np.random.default_rng(stable_seed("mismatch", self.name, split, image_id, seed)).uniform(
            -1.0, 1.0, self.angles
        )
        jitter = np.deg2rad(self.jitter_deg * abs(level)) * u
        return perturbed_geometry(nominal, jitter, self.offset_px * level * nominal.det_partition.cell_sides[0])

    def perturbed_simulation(self, size: int, split: str, image_id: str, seed: int, level, device) -> OdlLinear:
        """The simulation operator (on the fine grid, nominal normalization) of the perturbed geometry."""
        geom = self.mismatch_geometry(size, split, image_id, seed, level)
        impl = self.impl or backend(device, self.geometry)
        if impl == "skimage" and level:
            raise ValueError(
                f"task {self.name}: operator mismatch needs astra (a detector shift), not the skimage backend"
            )
        if impl == "astra_cpu" and isinstance(geom, tomo.Parallel2dGeometry):
            geom.implementation_cache["astra_cpu"] = _astra_parallel_vec(geom)  # ODL's plain 'parallel' drops the shift
        op = tomo.RayTransform(_space(size * self.oversample), geom, impl=impl)
        return OdlLinear(op, self.operators(size, device)["A_fine"].scale)

    def initialize(self, y: torch.Tensor, physics) -> torch.Tensor:
        return physics.A_dagger(y)  # FBP, as in measure (probes call this on data they make)

    def measure(self, x: torch.Tensor, split: str, image_id: str, seed: int, noise_scale: float = 1.0, mismatch=0):
        """`mismatch` != 0: the sinogram of the perturbed geometry with the nominal noise (std and
        realization); the returned physics and FBP are nominal."""
        size = x.shape[-1]
        if x.shape[-2] != size:
            raise ValueError(f"CT task {self.name}: images must be square, got {tuple(x.shape[-2:])}")
        if self.oversample == 1:
            fine = x[0]
        elif split in SPLITS:
            fine = self._fine(split, image_id, size)
        else:  # a foreign image (probe `ood`) has no finer rendering: simulate from its bilinear upsampling
            fine = F.interpolate(x.cpu().float(), scale_factor=self.oversample, mode="bilinear", align_corners=False)[0]
        clean = self.operators(size, x.device)["A_fine"].apply(fine.to(x)).unsqueeze(0)  # (1, 1, angles, detectors)
        sigma = self.noise * noise_scale * float(clean.abs().mean())
        physics = self.physics(size, sigma, stable_seed(self.stream, split, image_id, seed), x.device)
        if mismatch:
            clean = (
                self.perturbed_simulation(size, split, image_id, seed, mismatch, x.device)
                .apply(fine.to(x))
                .unsqueeze(0)
            )
        y = physics.noise(clean)
        return y, physics, physics.A_dagger(y)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "geometry": self.geometry,
            "angles": self.angles,
            "size": self.size,
            "noise": self.noise,
            "oversample": self.oversample,
        }
