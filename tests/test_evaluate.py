"""Benchmark your own model: regbench.evaluate takes a deepinv Prior, a denoiser or a reconstructor as it
is, and gives the same rows as the same model run as a registered method."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch
from conftest import REPO, run_of
from omegaconf import OmegaConf

import regbench
from regbench.core.spec import MethodSpec
from regbench.evaluation.runner import execute
from regbench.methods.external import ExternalModelError, sha256_of

SMOKE = {"profile": "smoke", "compare": [], "progress": False}


def _registered(tmp_path, method: str | dict, name: str) -> pd.DataFrame:
    """The rows of a method built by the engine from its config (a registered name, or a model block)."""
    run = run_of(
        f"method={method if isinstance(method, str) else 'tv'}",
        "profile=smoke",
        "progress=false",
        f"out={tmp_path / name}",
        f"cache_dir={tmp_path / 'cache'}",
    )
    if isinstance(method, dict):
        run = run.replace(method=MethodSpec.from_config(OmegaConf.create({"name": name, "model": method}), "smoke"))
    execute(run)
    return pd.read_parquet(tmp_path / name / "results.parquet")


def _psnr(rows: pd.DataFrame) -> list[float]:
    return rows.sort_values("image_id").psnr.tolist()


def test_a_prior_a_denoiser_and_a_callable_give_the_rows_of_the_same_registered_models(tmp_path, monkeypatch):
    import deepinv as dinv

    monkeypatch.setenv("REGBENCH_CACHE", str(tmp_path / "cache"))
    prior = regbench.evaluate(dinv.optim.WaveletPrior(wv="db4", level=3), "my_wavelet", out=tmp_path / "p", **SMOKE)
    assert prior.method.tolist() == ["my_wavelet"] and prior.weights.tolist() == ["none"]
    mine = pd.read_parquet(tmp_path / "p" / "results.parquet")
    assert _psnr(mine) == _psnr(_registered(tmp_path, "wavelet_l1", "wavelet_l1"))
    assert json.loads(mine.hyper.iloc[0])["lam"] > 0  # lam calibrated as for the registered method

    regbench.evaluate(dinv.models.MedianFilter(), "my_median", out=tmp_path / "d", **SMOKE)
    pnp = {"_target_": "regbench.methods.pnp.PnP", "denoiser": {"_target_": "deepinv.models.MedianFilter"}}
    assert _psnr(pd.read_parquet(tmp_path / "d" / "results.parquet")) == _psnr(_registered(tmp_path, pnp, "median"))

    regbench.evaluate(lambda y, physics: y.clone(), "identity", out=tmp_path / "c", **SMOKE)
    expected = _psnr(_registered(tmp_path, "initializer", "initializer"))  # x0 = y on denoising
    assert _psnr(pd.read_parquet(tmp_path / "c" / "results.parquet")) == expected


@pytest.mark.parametrize(
    "model, reason",
    [
        (lambda y, physics: y[..., :-1], "failed: ValueError: the model returned shape"),
        (lambda y, physics: y * float("nan"), "failed: non-finite reconstruction"),
        (lambda y, physics: y.numpy(), "failed: TypeError: the model returned a ndarray, not a tensor"),
        (lambda y, physics: {}["missing"], "failed: RuntimeError: the model raised KeyError"),
    ],
    ids=["shape", "nan", "not-a-tensor", "raises"],
)
def test_a_model_that_misbehaves_gives_failed_rows_with_the_reason(model, reason, tmp_path):
    board = regbench.evaluate(model, "bad", out=tmp_path, **SMOKE)
    rows = pd.read_parquet(tmp_path / "results.parquet")
    assert len(rows) == 2 and rows.status.str.startswith(reason).all() and int(board.n_failed.iloc[0]) == 2


def test_a_prior_without_grad_or_prox_is_one_line_naming_what_is_missing(tmp_path):
    class ValueOnly:
        def fn(self, x):
            return x.abs().sum()

    with pytest.raises(
        ExternalModelError, match="^model 'v': a regularizer needs fn and grad or prox; it lacks grad or prox$"
    ):
        regbench.evaluate(ValueOnly(), "v", out=tmp_path, **SMOKE)
    assert not (tmp_path / "rows").exists()


def test_weights_are_checked_by_hash_and_rows_say_they_came_from_elsewhere(tmp_path, monkeypatch):
    import deepinv as dinv

    monkeypatch.setenv("REGBENCH_CACHE", str(tmp_path / "cache"))
    model = dinv.models.DnCNN(in_channels=1, out_channels=1, depth=2, nf=4, pretrained=None)
    path = tmp_path / "dncnn.pt"
    torch.save(model.state_dict(), path)
    digest = sha256_of(path)
    wrong = "0" * 64
    with pytest.raises(
        ExternalModelError, match=f"^weights file {path}: sha256 {digest} does not match the expected {wrong}$"
    ):
        regbench.evaluate(model, "dncnn", weights={"path": path, "sha256": wrong}, out=tmp_path / "w", **SMOKE)
    assert not (tmp_path / "w").exists()  # nothing evaluated
    board = regbench.evaluate(
        model,
        "dncnn",
        weights={"path": path, "sha256": digest},
        out=tmp_path / "ok",
        calibrate={"strength": (0.5, 2.0)},
        **SMOKE,
    )
    assert board.weights.tolist() == [f"external:{digest[:12]}"]
    rows = pd.read_parquet(tmp_path / "ok" / "results.parquet")
    assert set(json.loads(rows.hyper.iloc[0])) == {"strength", "iterations", "lam", "sigma_start"}
    assert "external:" in (tmp_path / "ok" / "leaderboard.md").read_text()


def test_a_method_yaml_may_name_weights_trained_elsewhere(tmp_path):
    model = {"_target_": "regbench.methods.pnp.PnP", "denoiser": {"_target_": "deepinv.models.MedianFilter"}}
    path = tmp_path / "pnp.pt"
    torch.save({"_extra_state": {"hp": {"lam": 0.5}}}, path)
    block = {"name": "median_ext", "model": model, "weights": {"path": str(path), "sha256": sha256_of(path)}}
    run = run_of("profile=smoke", "progress=false", f"out={tmp_path / 'out'}", f"cache_dir={tmp_path / 'cache'}")
    execute(run.replace(method=MethodSpec.from_config(OmegaConf.create(block), "smoke")))
    rows = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert (rows.weights == f"external:{sha256_of(path)[:12]}").all() and (rows.train_minutes == 0).all()


def test_the_shell_command_evaluates_a_module_object(tmp_path):
    (tmp_path / "mymodels.py").write_text("def Halve(y, physics):\n    return y / 2\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "regbench",
            "evaluate",
            "mymodels:Halve",
            "--out",
            str(tmp_path / "out"),
            "progress=false",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| Halve" in proc.stdout and (tmp_path / "out" / "report.html").is_file()


def _markdown_numbers(table: str) -> list[list[str]]:
    lines = [line for line in table.strip().splitlines() if line.startswith("|") and not line.startswith("|:")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


@pytest.mark.slow  # CT and denoising at smoke size: about a minute and a half
def test_the_readme_example_prints_the_table_the_readme_shows(tmp_path):
    import re

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Benchmark your own model", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shown = re.search(r"prints\n\n```\n(.*?)```", section, re.S).group(1)
    (tmp_path / "example.py").write_text(code)
    proc = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got, want = _markdown_numbers(proc.stdout), _markdown_numbers(shown)
    assert [row[:3] for row in got] == [row[:3] for row in want]
    for g, w in zip(got, want):
        assert [float(v) for v in g[3:]] == pytest.approx([float(v) for v in w[3:]], abs=0.02), (g, w)
    assert (tmp_path / "runs" / "mine" / "report.html").is_file()


def test_a_sweep_with_a_wrong_weights_file_stops_before_any_job_in_one_line(tmp_path):
    from conftest import run_cli

    path = tmp_path / "pnp.pt"
    torch.save({"_extra_state": {"hp": {}}}, path)
    (tmp_path / "plugin" / "configs" / "method").mkdir(parents=True)
    (tmp_path / "plugin" / "configs" / "method" / "median_ext.yaml").write_text(
        "name: median_ext\nmodel:\n  _target_: regbench.methods.pnp.PnP\n"
        "  denoiser: {_target_: deepinv.models.MedianFilter}\n"
        f"weights: {{path: {path}, sha256: {'1' * 64}}}\n"
    )
    proc = run_cli(
        "method=median_ext",
        "profile=smoke",
        f"out={tmp_path / 'out'}",
        cache=tmp_path / "cache",
        env={"REGBENCH_PLUGINS": str(tmp_path / "plugin")},
    )
    assert proc.returncode == 2 and not (tmp_path / "out" / "rows").exists()
    line = f"method median_ext: weights file {path}: sha256 {sha256_of(path)} does not match the expected {'1' * 64}"
    assert line in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
