"""A new method by YAML alone: a plugin root with configs/method/<name>.yaml joins the sweep."""

import json

import pandas as pd
from conftest import run_cli

TIKHONOV = """\
name: tikhonov_grad
model:
  _target_: regbench.methods.prior.PriorMethod
  prior: {_target_: deepinv.optim.Tikhonov}
  smooth: true
  lipschitz: 1.0
train: null
"""


def test_method_defined_by_yaml_alone_runs_through_the_smoke_sweep(tmp_path):
    plugin = tmp_path / "plugin"
    (plugin / "configs" / "method").mkdir(parents=True)
    (plugin / "configs" / "method" / "tikhonov_grad.yaml").write_text(TIKHONOV)
    out = tmp_path / "out"
    env = {"REGBENCH_PLUGINS": str(plugin)}
    proc = run_cli(
        "-m", "method=tv,tikhonov_grad", "profile=smoke", f"out={out}", "progress=false", cache=tmp_path / "c", env=env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = pd.read_parquet(out / "results.parquet")
    assert sorted(rows.method.unique()) == ["tikhonov_grad", "tv"]
    tik = rows[rows.method == "tikhonov_grad"]
    assert tik.converged.all() and tik.psnr.notna().all()
    assert '"lam"' in tik.hyper.iloc[0]  # lambda was calibrated
    board = (out / "leaderboard.md").read_text()
    assert "| tikhonov_grad" in board
    # without the plugin root the name is unknown, in one line
    proc = run_cli("method=tikhonov_grad", "profile=smoke", f"out={out}", cache=tmp_path / "c")
    assert proc.returncode == 2 and "unknown method 'tikhonov_grad'" in proc.stderr


SHRINK_MODULE = '''\
"""Shrinkage towards the mean of the training patches: the smallest method with code."""
import torch

from regbench.methods.base import Hyper, Method


class Shrink(Method):
    family = "denoiser"
    trainable = True
    hyperparameters = {"alpha": Hyper(0.5, span=4.0, calibrate=True, bounds=(0.01, 1.0))}

    def __init__(self, **hyper):
        super().__init__(**hyper)
        self.register_buffer("mean", torch.tensor(0.5))

    def fit(self, patches, budget, progress=True):
        self.mean.fill_(float(patches.sample(int(budget["batch"]), int(budget["patch"])).mean()))
        return {"minutes": 0.0, "mean": float(self.mean)}

    def reconstruct(self, y, physics, x0, hyper, options):
        return self.mean + hyper["alpha"] * (x0 - self.mean), {"iterations": 1}
'''

SHRINK_YAML = """\
name: toy_shrink
model:
  _target_: regbench.methods.toy_shrink.Shrink
train:
  scheme: method_fit
  data:
    _target_: regbench.datasets.bsds500.BSDS500
    split: train400
    root: ${data.root}
    download: ${data.download}
  budget:
    smoke: {batch: 8, patch: 32, n_images: 2}
    cpu: {batch: 256, patch: 64, n_images: null}
    paper: {batch: 1024, patch: 64, n_images: null}
"""


def test_method_with_its_own_module_runs_through_the_smoke_sweep(tmp_path):
    """README "Add a method": one module in methods/ and one YAML in configs/method/, nothing else."""
    plugin = tmp_path / "plugin"
    (plugin / "configs" / "method").mkdir(parents=True)
    (plugin / "methods").mkdir()
    (plugin / "methods" / "toy_shrink.py").write_text(SHRINK_MODULE)
    (plugin / "configs" / "method" / "toy_shrink.yaml").write_text(SHRINK_YAML)
    out, cache = tmp_path / "out", tmp_path / "c"
    proc = run_cli(
        "-m",
        "method=tv,toy_shrink",
        "profile=smoke",
        f"out={out}",
        "progress=false",
        cache=cache,
        env={"REGBENCH_PLUGINS": str(plugin)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = pd.read_parquet(out / "results.parquet")
    toy = rows[rows.method == "toy_shrink"]
    assert len(toy) == 2 and toy.psnr.notna().all()
    alpha = json.loads(toy.hyper.iloc[0])["alpha"]
    assert 0.01 <= alpha <= 1.0 and alpha != 0.5  # calibrated within its bounds
    assert list((cache / "checkpoints").glob("toy_shrink-*.pt"))  # trained once, content-addressed
