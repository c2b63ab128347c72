"""A new method by YAML alone: a plugin root with configs/method/<name>.yaml joins the sweep."""
import pandas as pd

from conftest import run_cli

TIKHONOV = """\
name: tikhonov_grad
model:
  _target_: regbench_methods.prior.PriorMethod
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
    proc = run_cli("-m", "method=tv,tikhonov_grad", "profile=smoke", f"out={out}", "progress=false", cache=tmp_path / "c", env=env)
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
