"""Training schemes are parts of their own: any compatible method trains under any of them, an
incompatible pair fails before a sweep starts, and the scheme is part of the checkpoint key."""

import re
import subprocess
import sys

import pandas as pd
import pytest
import torch
from conftest import run_cli, run_of

from regbench.cli.precheck import check_sweep
from regbench.core.registry import known
from regbench.core.validate import ConfigError
from regbench.datasets.bsds500 import BSDS500
from regbench.datasets.images import center_crop
from regbench.datasets.patches import PatchSampler
from regbench.evaluation.runner import combination_key
from regbench.methods.ridge import WCRR
from regbench.results.leaderboard import aggregate, to_markdown, training_table
from regbench.results.publish import readme_table
from regbench.solvers.apg import apg
from regbench.solvers.options import SolverOptions
from regbench.training import checkpoints
from regbench.training.schemes import NEEDS, Scheme, load_scheme
from regbench.training.schemes.bilevel import hessian_system


def test_every_scheme_yaml_names_its_class_and_known_needs():
    for name in known("training"):
        scheme = load_scheme(name)
        assert isinstance(scheme, Scheme) and scheme.name == name
        assert set(scheme.needs) <= set(NEEDS), name


def test_the_scheme_is_part_of_the_checkpoint_key_and_the_method_budget_overrides_its_own_key_by_key():
    ift = checkpoints.spec_of(run_of("method=crr", "profile=cpu"))
    jfb = checkpoints.spec_of(run_of("method=crr", "profile=cpu", "training=bilevel_jfb"))
    assert (ift["training"], jfb["training"]) == ("bilevel_ift", "bilevel_jfb")
    assert checkpoints.checkpoint_key(ift) != checkpoints.checkpoint_key(jfb)
    assert ift["train"]["steps"] == 900  # CRR's own cpu steps over the scheme's 450
    assert ift["train"]["batch"] == 32 and ift["train"]["cg_iters"] == 20  # the rest is the scheme's
    assert jfb["train"]["steps"] == 450  # CRR's budget is sized for its own scheme, not for JFB
    adversarial = checkpoints.spec_of(run_of("method=crr", "profile=cpu", "training=adversarial"))
    assert (adversarial["train"]["steps"], adversarial["train"]["penalty_weight"]) == (1500, 10.0)
    assert adversarial["train"]["lr"] == 5.0e-3  # the method's own train keys hold under every scheme
    named = checkpoints.spec_of(run_of("method=crr", "profile=cpu", "training=bilevel_ift"))
    assert named == ift  # naming the default scheme is the default
    default, explicit = (
        run_of("method=wcrr", "profile=smoke"),
        run_of("method=wcrr", "profile=smoke", "training=bilevel_jfb"),
    )
    assert combination_key(default) != combination_key(explicit)
    assert (default.method.label, explicit.method.label) == ("wcrr", "wcrr+bilevel_jfb")
    same = run_of("method=wcrr", "profile=smoke", "training=bilevel_ift")  # its own scheme, named
    changed = run_of("method=wcrr", "profile=smoke", "training=bilevel_ift", "training.cg_iters=30")
    assert (same.method.label, combination_key(same)) == ("wcrr", combination_key(default))
    assert changed.method.label == "wcrr+bilevel_ift" and combination_key(changed) != combination_key(default)


def test_incompatible_method_and_scheme_fail_before_the_sweep_in_one_line():
    with pytest.raises(
        ConfigError, match=r"method deal x training bilevel_ift: training scheme bilevel_ift needs a smooth"
    ):
        check_sweep(["-m", "method=wcrr,deal", "training=bilevel_ift", "profile=smoke"], [])
    with pytest.raises(ConfigError, match=r"method 'tv' has nothing to train"):
        check_sweep(["method=tv", "training=bilevel_jfb", "profile=smoke"], [])
    with pytest.raises(ConfigError, match=r"needs a noise-conditional denoiser.*RidgeRegularizer has none"):
        check_sweep(["method=crr", "training=denoiser_mse", "profile=smoke"], [])


def test_autograd_hessian_system_matches_the_ridge_operator():
    torch.manual_seed(0)
    m = WCRR(mu=3.0).double()
    with torch.no_grad():
        m.spline.raw.add_(torch.randn_like(m.spline.raw))
    x, v = torch.rand(1, 1, 16, 16, dtype=torch.float64), torch.randn(1, 1, 16, 16, dtype=torch.float64)
    own = hessian_system(m, x, 0.7, m.hp)
    m.hessian_operator = None  # the generic path: Hessian-vector products by autograd
    generic = hessian_system(m, x, 0.7, m.hp)
    assert torch.allclose(generic(v), own(v), atol=1e-10)


@pytest.fixture(scope="module")
def denoising():
    test = BSDS500(split="bsd68", root=None, download=False)
    x = torch.stack([center_crop(test.load(i), 40) for i in test.ids()[:4]])
    y = x + 25 / 255 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    return x, y


def _denoised_psnr(method, x, y) -> float:
    """PSNR at the best lam of a log grid around the learned one (as calibration would pick it: a
    scheme that trains at another noise level than the test's learns R, not the test's lam)."""
    best = float("-inf")
    with torch.no_grad():
        reg = method.regularizer(method.hp, SolverOptions(), y)
        for factor in (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0):
            lam = method.hp["lam"] * factor
            out, _ = apg(y, lambda z: z - y + lam * reg.grad(z), lipschitz=1 + lam * reg.lipschitz, max_iter=200)
            best = max(best, float(-10 * torch.log10(((out - x) ** 2).mean())))
    return best


@pytest.mark.parametrize(
    "scheme, steps",
    # a critic moves R more slowly than a loss on the denoised patch: more (cheap) steps
    [("bilevel_ift", 25), ("bilevel_jfb", 25), ("score", 25), ("adversarial", 100), ("adversarial_local", 100)],
)
def test_every_regularizer_scheme_improves_the_same_architecture(scheme, steps, denoising):
    """Each scheme beats the initialization at its best lam (both searched alike)."""
    x, y = denoising
    spec = checkpoints.spec_of(run_of("method=wcrr", "profile=smoke", f"training={scheme}"))
    method = WCRR(**{k: v for k, v in spec["model"].items() if k != "_target_"})
    before = _denoised_psnr(method, x, y)
    patches = PatchSampler(BSDS500(split="train400", root=None, download=False), n_images=8, seed=0)
    log = load_scheme(scheme).train(method, patches, {**spec["train"], "steps": steps, "seed": 0}, progress=False)
    after = _denoised_psnr(method, x, y)
    assert after > before + 0.5, (scheme, before, after)
    assert len(log["history"]["loss"]) == steps and set(log["history"]) >= {"lam", "mu"}
    assert set(log["history"]) >= ({"gap", "penalty"} if scheme.startswith("adversarial") else {"psnr"})


def _rows(method: str, training: str, psnrs: list[float], probe: str = "nominal") -> list[dict]:
    return [
        {"task": "denoise_bsd68", "probe": probe, "level": 0, "method": method, "training": training,
         "image_id": str(i), "psnr": p, "ssim": 0.5, "seconds": 1.0, "iterations": 10, "params": 100,
         "train_minutes": 1.0, "converged": True, "status": "ok"}
        for i, p in enumerate(psnrs)
    ]  # fmt: skip


def test_the_method_x_training_table_crosses_architectures_with_schemes():
    rows = pd.DataFrame(
        _rows("wcrr", "bilevel_ift", [28.0, 29.0])
        + _rows("wcrr+bilevel_ift", "bilevel_ift", [10.0, 10.0])  # own scheme, changed settings: the default wins
        + _rows("wcrr+score", "score", [27.0, 28.0])
        + _rows("crr", "bilevel_ift", [27.5, 27.5])
        + _rows("crr+score", "score", [20.0, 20.0], probe="noise_sweep")  # level 0 of another probe
        + _rows("tv", "none", [26.0, 26.0])
    )
    board = aggregate(rows)
    table = training_table(board).set_index("method")
    assert list(table.columns) == ["task", "bilevel_ift", "score"] and set(table.index) == {"crr", "wcrr"}
    assert table.loc["wcrr", "bilevel_ift"] == 28.5 and table.loc["wcrr", "score"] == 27.5
    assert table.loc["crr", "score"] == 20.0
    markdown = to_markdown(board)
    assert "## Method x training" in markdown
    assert "| denoise_bsd68 | wcrr     | 28.50         | 27.50   |" in markdown
    stamp = {"command": "regbench release", "commit": "abc1234", "date": "2026-01-01", "profile": "smoke",
             "experiment": "training_schemes", "machine": {"cpu": "x86_64", "threads": 2, "gpu": None}}  # fmt: skip
    readme = readme_table(board, stamp).split("**Method x training** (PSNR, dB)")[1]  # the README's copy: nominal
    assert re.search(r"\| denoise_bsd68 \| wcrr +\| 28\.50 +\| 27\.50 +\|", readme)
    assert re.search(r"\| denoise_bsd68 \| crr +\| 27\.50 +\| – +\|", readme)  # its score rows: another probe
    assert training_table(aggregate(rows[rows.training != "score"])).empty  # one scheme each: nothing to cross
    own_schemes = rows[rows.method.isin(["wcrr", "tv"])].assign(  # two methods, each under its own scheme
        method=["wcrr", "wcrr", "pnp", "pnp"], training=["bilevel_ift"] * 2 + ["denoiser_mse"] * 2
    )
    assert training_table(aggregate(own_schemes)).empty


@pytest.mark.slow
def test_training_schemes_experiment_fills_the_table_in_leaderboard_report_and_wandb(tmp_path):
    from test_wandb import no_credentials_env, read_run, table

    out = tmp_path / "out"
    proc = run_cli(
        "-m", "experiment=training_schemes", "profile=smoke", f"out={out}", "progress=false", "logger=wandb",
        cache=tmp_path / "cache", env=no_credentials_env(tmp_path / "home"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = pd.read_parquet(out / "results.parquet")
    schemes = ["adversarial", "adversarial_local", "bilevel_ift", "bilevel_jfb", "score"]
    assert sorted(rows.training.unique()) == schemes and rows.psnr.notna().all()
    others = {f"{m}+{s}" for m in ("crr", "wcrr") for s in schemes if s != "bilevel_ift"}  # not their own scheme
    assert set(rows.method) == {"crr", "wcrr"} | others
    expected = training_table(aggregate(rows)).set_index("method")
    assert expected[schemes].notna().all().all() and set(expected.index) == {"crr", "wcrr"}
    assert expected.loc["wcrr", "score"] == pytest.approx(rows[rows.method == "wcrr+score"].psnr.mean())
    assert "## Method x training" in (out / "leaderboard.md").read_text()
    report = subprocess.run([sys.executable, "-m", "regbench", "report", str(out)], capture_output=True, text=True)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "<h3>Method x training</h3>" in (out / "report.html").read_text()
    (board_run,) = [r for r in map(read_run, (out / "wandb").glob("offline-run-*")) if r["job_type"] == "leaderboard"]
    logged = table(board_run, "method_x_training").set_index("method")
    assert logged.loc["wcrr", "adversarial"] == pytest.approx(expected.loc["wcrr", "adversarial"])


def test_the_schemes_command_shows_which_schemes_each_method_accepts():
    from regbench.cli.schemes import compatibility

    table, why = compatibility("smoke")
    table = table.set_index("method")
    assert "tv" not in table.index and {"crr", "wcrr", "deal", "pnp_drunet"} <= set(table.index)
    smooth = ["adversarial", "adversarial_local", "bilevel_jfb", "score"]
    assert (table.loc["wcrr", smooth] == "yes").all() and table.loc["wcrr", "bilevel_ift"] == "default"
    assert table.loc["deal", "deal_unrolled"] == "default" and (table.loc["deal"].drop("deal_unrolled") == "-").all()
    assert table.loc["pnp_drunet", "diffusion_edm"] == "yes" and table.loc["pnp_drunet", "score"] == "-"
    assert "needs a noise-conditional denoiser" in why["crr x denoiser_mse"]
