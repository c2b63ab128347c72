"""Faults: a killed sweep resumes without losing or redoing work; no network; unwritable OUT."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from conftest import REPO, run_cli, run_of

from regbench.core.instantiate import build
from regbench.datasets.patches import PatchSampler
from regbench.training import checkpoints
from regbench.training.snapshots import TrainingSnapshot
from regbench.training.weights import train_method

TIMING = ["seconds", "peak_mem_mb", "git_rev", "train_minutes", "calib_seconds"]


def _comparable(rows):
    return rows.drop(columns=TIMING).sort_values(["method", "image_id"]).reset_index(drop=True)


def reference_methods(sweep):
    return pd.read_parquet(sweep["out"] / "results.parquet").method.unique()


@pytest.mark.slow
def test_sigkill_mid_sweep_then_rerun_matches_an_uninterrupted_sweep(smoke_sweep, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = [
        sys.executable,
        "-m",
        "regbench",
        "run",
        "-m",
        "experiment=default",
        "profile=smoke",
        f"out={out}",
        "progress=false",
    ]
    env = {**os.environ, "REGBENCH_CACHE": str(cache)}
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / "rows").glob("*.parquet"))) < 1:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-sweep: one combination done, the next in flight
    proc.wait()
    finished = len(list((out / "rows").glob("*.parquet")))
    assert 1 <= finished < len(reference_methods(smoke_sweep))
    rerun = run_cli("-m", "experiment=default", "profile=smoke", f"out={out}", "progress=false", cache=cache)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert (rerun.stdout + rerun.stderr).count("finished already") == finished
    resumed = pd.read_parquet(out / "results.parquet")
    reference = pd.read_parquet(smoke_sweep["out"] / "results.parquet")
    assert len(resumed) == len(reference)
    assert (reference.groupby("method").image_id.nunique() == 2).all()  # samplers: one row per image and seed
    pd.testing.assert_frame_equal(_comparable(resumed), _comparable(reference))


def test_smoke_sweep_runs_with_the_network_blocked(tmp_path):
    code = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise OSError('network blocked by test')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
        "import runpy\n"
        "sys.argv = ['regbench', 'run', '-m', 'method=tv,crr', 'profile=smoke', "
        f"'out={tmp_path / 'out'}', 'progress=false']\n"
        "runpy.run_module('regbench', run_name='__main__', alter_sys=True)\n"
    )
    env = {**os.environ, "REGBENCH_CACHE": str(tmp_path / "cache"), "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(pd.read_parquet(tmp_path / "out" / "results.parquet")) == 4


def test_unwritable_out_fails_before_work_in_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run_cli("method=tv", "profile=smoke", f"out={blocker / 'sub'}", cache=tmp_path / "cache")
    assert proc.returncode == 2
    assert f"out={blocker / 'sub'} is not writable" in proc.stdout + proc.stderr
    assert "choose another out=" in proc.stdout + proc.stderr


UNSTABLE = '''\
"""Test plugin: a method whose step-size bound is wrong (diverges) or whose solve crashes."""
import torch
from regbench.methods.base import Hyper, VariationalMethod


class Unstable(VariationalMethod):
    hyperparameters = {"lam": Hyper(10.0, calibrate=False)}

    def __init__(self, mode="diverge", **hyper):
        super().__init__(**hyper)
        self.mode = mode

    def reg_energy(self, x):
        return 50.0 * x.flatten(1).pow(2).sum(1)

    def reg_grad(self, x):
        if self.mode == "crash":
            raise RuntimeError("simulated solver crash\\nsecond line")
        return 100.0 * x

    def reg_lipschitz(self):
        return 0.01  # wrong on purpose: the true bound is 100
'''


def _unstable_plugin(root):
    (root / "methods").mkdir(parents=True)
    (root / "configs" / "method").mkdir(parents=True)
    (root / "methods" / "unstable.py").write_text(UNSTABLE)
    for mode in ("diverge", "crash"):
        (root / "configs" / "method" / f"unstable_{mode}.yaml").write_text(
            f"name: unstable_{mode}\nmodel: {{_target_: regbench.methods.unstable.Unstable, mode: "
            f"{mode}}}\ntrain: null\n"
        )
    return {"REGBENCH_PLUGINS": str(root)}


def test_diverging_and_crashing_solves_become_failed_rows_and_the_sweep_goes_on(tmp_path):
    env = _unstable_plugin(tmp_path / "plugin")
    out = tmp_path / "out"
    # energy tracking off: the overflow check (not the energy blow-up check) must catch it
    proc = run_cli(
        "-m",
        "method=unstable_diverge,unstable_crash,tv",
        "profile=smoke",
        f"out={out}",
        "progress=false",
        "convergence.energy=false",
        cache=tmp_path / "cache",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = pd.read_parquet(out / "results.parquet")
    diverged = rows[rows.method == "unstable_diverge"]
    crashed = rows[rows.method == "unstable_crash"]
    assert len(diverged) == len(crashed) == 2 and not diverged.converged.any() and diverged.psnr.isna().all()
    assert diverged.status.str.startswith("failed: diverged: iterates overflow or are NaN at iteration").all()
    assert crashed.status.eq("failed: RuntimeError: simulated solver crash").all()
    assert rows[rows.method == "tv"].status.eq("ok").all()
    board = pd.read_csv(out / "leaderboard.csv").set_index("method")
    assert board.loc["unstable_diverge", "n_failed"] == 2 and board.loc["tv", "n_failed"] == 0
    md = (out / "leaderboard.md").read_text()
    header = next(line for line in md.splitlines() if "| method" in line and "PSNR (dB)" in line)
    assert header.rstrip().endswith("failed |")
    assert any("| unstable_crash " in line and line.rstrip().endswith("2 |") for line in md.splitlines())


def test_iteration_cap_marks_rows_not_converged_with_the_reason(smoke_sweep, tmp_path):
    out = tmp_path / "out"
    proc = run_cli(
        "method=crr",
        "profile=smoke",
        "profile.solver.max_iter=2",
        f"out={out}",
        "progress=false",
        cache=smoke_sweep["cache"],
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = pd.read_parquet(out / "results.parquet")
    assert not rows.converged.any() and rows.psnr.notna().all() and (rows.iterations == 2).all()
    assert rows.status.str.startswith("not converged: iteration cap 2 reached (relative change").all()
    assert "0%" in (out / "leaderboard.md").read_text()


def test_same_seed_same_machine_gives_identical_numbers(smoke_sweep, tmp_path):
    out = tmp_path / "out"
    proc = run_cli(
        "-m", "method=crr,wcrr,tv", "profile=smoke", f"out={out}", "progress=false", cache=tmp_path / "cache"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = pd.read_parquet(out / "results.parquet").sort_values(["method", "image_id"]).reset_index(drop=True)
    first = pd.read_parquet(smoke_sweep["out"] / "results.parquet")
    first = first[first.method.isin(["crr", "wcrr", "tv"])].sort_values(["method", "image_id"]).reset_index(drop=True)
    assert (again.checkpoint == first.checkpoint).all()  # retrained from scratch into another cache: same key
    for col in ("psnr", "ssim", "calib_psnr"):
        assert (again[col] - first[col]).abs().max() <= 1e-6, col
    assert (again.iterations == first.iterations).all() and (again.hyper == first.hyper).all()


def test_full_disk_is_a_clear_error_and_leaves_nothing_half_written(tmp_path):
    code = (
        "import errno, sys, pandas\n"
        "def full(self, path, *a, **k):\n"
        "    open(path, 'wb').write(b'PAR1 partial')\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "pandas.DataFrame.to_parquet = full\n"
        "import runpy\n"
        f"sys.argv = ['regbench', 'run', 'method=tv', 'profile=smoke', 'out={tmp_path / 'out'}', 'progress=false']\n"
        "runpy.run_module('regbench', run_name='__main__', alter_sys=True)\n"
    )
    env = {**os.environ, "REGBENCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    err = [line for line in (proc.stdout + proc.stderr).splitlines() if "No space left on device" in line]
    assert len(err) == 1 and "could not write" in err[0] and "nothing was left half-written" in err[0]
    out = tmp_path / "out"
    assert not list(out.rglob("*.parquet")) and not list(out.rglob("*.tmp"))


def test_incompatible_method_task_pairs_are_rejected_at_sweep_start(tmp_path):
    plugin = tmp_path / "plugin"
    (plugin / "configs" / "method").mkdir(parents=True)
    (plugin / "configs" / "method" / "ct_only.yaml").write_text(
        "name: ct_only\ntasks: ['ct_*']\nmodel: {_target_: regbench.methods.tv.TV}\ntrain: null\n"
    )
    out = tmp_path / "out"
    proc = run_cli(
        "-m",
        "method=tv,ct_only",
        "task=denoise_bsd68,denoise_folder",
        "profile=smoke",
        f"out={out}",
        cache=tmp_path / "cache",
        env={"REGBENCH_PLUGINS": str(plugin)},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "regbench: error: incompatible method x task pairs: "
        "ct_only x denoise_bsd68 (method ct_only runs only on tasks matching ct_*); "
        "ct_only x denoise_folder (method ct_only runs only on tasks matching ct_*)"
    )
    assert not (out / "rows").exists()


class Killed(Exception):
    """Stands for the process dying mid-training."""


@pytest.mark.parametrize("name", ["crr", "deal", "pnp_drunet"])  # the three training loops (ridge, DEAL, denoisers)
def test_killed_training_resumes_from_its_snapshot_to_the_same_weights(name, tmp_path, monkeypatch, caplog):
    def trained(cache, die_after=None):
        run = run_of(f"method={name}", "profile=smoke", "progress=false", f"cache_dir={cache}", "snapshot_every_s=0")
        spec = checkpoints.spec_of(run)
        method = build(run.method.model)
        if die_after is not None:
            sample, calls = PatchSampler.sample, []

            def dying(self, *args):
                calls.append(1)
                if len(calls) > die_after:
                    raise Killed
                return sample(self, *args)

            monkeypatch.setattr(PatchSampler, "sample", dying)
        try:
            return method, train_method(run, method, torch.device("cpu"), spec)
        finally:
            monkeypatch.undo()

    whole, whole_entry = trained(tmp_path / "a")
    with pytest.raises(Killed):
        trained(tmp_path / "b", die_after=2)
    assert len(list((tmp_path / "b" / "snapshots").glob("*.pt"))) == 1
    with caplog.at_level("INFO"):
        resumed, resumed_entry = trained(tmp_path / "b")
    assert "at step 2" in caplog.text
    assert resumed_entry["log"]["history"] == whole_entry["log"]["history"]
    state_a, state_b = whole.state_dict(), resumed.state_dict()
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a if torch.is_tensor(state_a[k]))
    assert resumed.hp == whole.hp


def test_an_unreadable_snapshot_is_reported_and_training_starts_over(tmp_path, caplog):
    path = tmp_path / "snap.pt"
    path.write_bytes(b"truncated")
    net = torch.nn.Linear(2, 2)
    with caplog.at_level("WARNING"):
        assert TrainingSnapshot(path, net=net).restore({}) == 0
    assert "unusable" in caplog.text and "from the start" in caplog.text
    history = {"loss": [1.0]}
    TrainingSnapshot(path, net=net).save(1, history, 0.5, force=True)
    other, got = torch.nn.Linear(2, 2), {}
    snap = TrainingSnapshot(path, net=other)
    assert snap.restore(got) == 1 and got == history and snap.minutes_before == 0.5
    assert torch.equal(other.weight, net.weight)


def test_a_release_removes_its_training_snapshot_and_what_it_supersedes(tmp_path):
    """A release replaces the one made for the same command line under an older config (another key):
    its file, manifest entry and calibration go; other releases stay."""
    import json

    from regbench.training.release import release

    cache, weights = tmp_path / "cache", tmp_path / "weights"
    overrides = (f"cache_dir={cache}", f"weights_dir={weights}", "snapshot_every_s=0", "progress=false")
    weights.mkdir()
    for name in ("crr-old.pt", "wcrr-other.pt"):
        (weights / name).write_bytes(b"weights")
    manifest = {
        "old": {"method": "crr", "file": "crr-old.pt", "calibration": {"overrides": list(overrides)}},
        "other": {"method": "wcrr", "file": "wcrr-other.pt", "calibration": {"overrides": list(overrides)}},
    }
    (weights / "MANIFEST.json").write_text(json.dumps(manifest))
    command = ["method=crr", "profile=smoke", *overrides]
    (weights / "CALIBRATIONS.json").write_text(
        json.dumps({"crr-old": {"overrides": command}, "tv-x": {"overrides": []}})
    )
    entry = release("crr", "smoke", overrides)
    assert (weights / entry["file"]).is_file()
    assert (cache / "snapshots").is_dir() and not list((cache / "snapshots").iterdir())
    assert set(json.loads((weights / "MANIFEST.json").read_text())) == {entry["key"], "other"}
    assert not (weights / "crr-old.pt").exists() and (weights / "wcrr-other.pt").exists()
    calibrations = json.loads((weights / "CALIBRATIONS.json").read_text())
    assert "crr-old" not in calibrations and "tv-x" in calibrations and len(calibrations) == 2
