"""Typed specs of one run, resolved once from the Hydra config at the edge.

The command line (and a script's or test's `compose`) turns the composed config into a
`Run`: what is run (method, training scheme, task, probe), at which sizes (profile), where
(folders, device) and how (seed, retrain, progress, evidence). Engine functions take the
parts they use, never the whole config. The YAML blocks a checkpoint, calibration or
combination key hashes (method, task, probe, profile) travel resolved beside the typed fields,
so keys are computed from exactly what the YAML says.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from regbench.core.labels import method_label, own_training
from regbench.core.plugins import REPO_ROOT


def resolved(node) -> DictConfig | None:
    """A config block with every interpolation resolved against the config it came from."""
    if node is None:
        return None
    return OmegaConf.create(OmegaConf.to_container(node, resolve=True))


@dataclass(frozen=True)
class Folders:
    """Where a run writes rows (`out`), keeps checkpoints and calibrations (`cache`) and finds the
    released weights (`weights`)."""

    out: Path
    cache: Path
    weights: Path

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "Folders":
        try:
            out = Path(str(cfg.out))
        except InterpolationResolutionError:  # composed outside a Hydra app: ${hydra:runtime.cwd} is unset
            out = Path.cwd() / "runs" / str(cfg.profile.name)
        cache = cfg.get("cache_dir") or os.environ.get("REGBENCH_CACHE") or REPO_ROOT / ".cache" / "regbench"
        return cls(
            out=out, cache=Path(cache), weights=Path(cfg.get("weights_dir") or REPO_ROOT / "results" / "weights")
        )


def profile_node(cfg: DictConfig) -> DictConfig:
    """The profile block with the experiment's test images for this profile over its `data`
    (an experiment's `sweep_data.<profile>`, e.g. the probes table's 6 images at 160 px in the cpu
    profile and its one image per level in the smoke profile)."""
    own = (cfg.get("sweep_data") or {}).get(str(cfg.profile.name))
    return OmegaConf.merge(cfg.profile, {"data": own}) if own else cfg.profile


@dataclass(frozen=True)
class ProfileSpec:
    """The sizes of one profile (configs/profile/): test and calibration images, solver, search."""

    name: str
    n_test: int | None
    test_crop: int | None
    n_calib: int
    calib_crop: int | None
    tol: float
    max_iter: int
    compile: bool
    calibrate_evals: int
    calibrate_max_iter: int | None
    config: DictConfig = field(repr=False)

    @classmethod
    def from_config(cls, node: DictConfig) -> "ProfileSpec":
        node = resolved(node)
        return cls(
            name=str(node.name),
            n_test=node.data.n_test,
            test_crop=node.data.test_crop,
            n_calib=int(node.data.n_calib),
            calib_crop=node.data.calib_crop,
            tol=float(node.solver.tol),
            max_iter=int(node.solver.max_iter),
            compile=bool(node.solver.get("compile", False)),
            calibrate_evals=int(node.calibrate.evals),
            calibrate_max_iter=node.calibrate.get("max_iter"),
            config=node,
        )


@dataclass(frozen=True)
class MethodSpec:
    """A method's YAML block (model, train, reconstruct, tasks), the training scheme it runs under
    (`training`: the run's `training=...`, None for its own), and its settings for the profile."""

    name: str
    label: str  # `<method>+<scheme>` when trained otherwise than its YAML says
    own_training: bool
    config: DictConfig = field(repr=False)
    training: DictConfig | None = field(repr=False, default=None)
    options: dict = field(default_factory=dict)  # reconstruct.<profile>, seeds and n_test excluded
    seeds: tuple[int, ...] = (0,)  # samplers: each test image once per seed
    n_test: int | None = None  # samplers may evaluate the first N test images only

    @classmethod
    def from_config(cls, method: DictConfig, profile: str, training: DictConfig | None = None) -> "MethodSpec":
        """`method`, `training`: blocks of a composed config (resolved here)."""
        config, training = resolved(method), resolved(training)
        per_profile = (config.get("reconstruct") or {}).get(profile) or {}
        options = OmegaConf.to_container(per_profile) if per_profile else {}
        seeds = options.pop("seeds", None)
        n_test = options.pop("n_test", None)
        return cls(
            name=str(config.name),
            label=method_label(config, training),
            own_training=own_training(config, training),
            config=config,
            training=training,
            options=options,
            seeds=tuple(int(s) for s in seeds) if seeds else (0,),
            n_test=None if n_test is None else int(n_test),
        )

    @property
    def model(self) -> DictConfig:
        return self.config.model

    @property
    def trains(self) -> bool:
        return self.config.get("train") is not None


@dataclass(frozen=True)
class Component:
    """A task or a probe: its registry name and its YAML block (`spec` builds it)."""

    name: str
    config: DictConfig = field(repr=False)

    @classmethod
    def from_config(cls, node: DictConfig) -> "Component":
        node = resolved(node)
        return cls(name=str(node.name), config=node)

    @property
    def spec(self) -> DictConfig:
        return self.config.spec


@dataclass(frozen=True)
class Evidence:
    """What energy-based methods record besides x (never changes x, so not part of any key)."""

    energy: bool = True  # rows get energy_monotone
    energy_every: int = 10
    traces: int = 2  # PSNR-vs-iteration traces of the first images at level 0

    def options(self) -> dict:
        """The solver option changes that track the energy on the rows (or none)."""
        return {"track_energy": True, "energy_every": self.energy_every} if self.energy else {}


@dataclass(frozen=True)
class Run:
    """One combination method x training x task x probe at one profile, and how it runs."""

    method: MethodSpec
    task: Component
    probe: Component
    profile: ProfileSpec
    folders: Folders
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    retrain: bool = False
    progress: bool = True
    snapshot_every_s: float = 300.0
    examples: int = 2
    data_root: str | None = None  # null: $REGBENCH_DATA, else <repo>/data
    download: bool = True  # fetch missing datasets from their canonical URL
    evidence: Evidence = Evidence()
    logger: dict = field(default_factory=lambda: {"name": "none"})
    config: DictConfig | None = field(repr=False, default=None, compare=False)  # the record written to OUT/configs

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "Run":
        profile = ProfileSpec.from_config(profile_node(cfg))
        conv = cfg.get("convergence") or {}
        return cls(
            method=MethodSpec.from_config(cfg.method, profile.name, cfg.get("training")),
            task=Component.from_config(cfg.task),
            probe=Component.from_config(cfg.probe),
            profile=profile,
            folders=Folders.from_config(cfg),
            seed=int(cfg.seed),
            device=str(cfg.device),
            threads=cfg.get("threads"),
            retrain=bool(cfg.retrain),
            progress=bool(cfg.progress),
            snapshot_every_s=float(cfg.snapshot_every_s),
            examples=int(cfg.get("examples", 2) or 0),
            data_root=None if cfg.data.root is None else str(cfg.data.root),
            download=bool(cfg.data.download),
            evidence=Evidence(
                energy=bool(conv.get("energy", False)),
                energy_every=int(conv.get("energy_every", 1)),
                traces=int(conv.get("traces", 2)),
            ),
            logger=OmegaConf.to_container(cfg.logger, resolve=True) if cfg.get("logger") else {"name": "none"},
            config=cfg,
        )

    def replace(self, **changes) -> "Run":
        return dataclasses.replace(self, **changes)

    @property
    def label(self) -> str:
        """`<method label>__<task>__<probe>`: the name of its configs, traces and examples."""
        return f"{self.method.label}__{self.task.name}__{self.probe.name}"

    @property
    def n_test(self) -> int | None:
        """Test images to evaluate: the profile's, capped by the method's (samplers)."""
        n, cap = self.profile.n_test, self.method.n_test
        if cap is None:
            return n
        return cap if n is None else min(int(n), cap)
