"""Faults: a killed sweep resumes without losing or redoing work; no network; unwritable OUT."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd

from conftest import REPO, run_cli

TIMING = ["seconds", "peak_mem_mb", "git_rev", "train_minutes"]


def _comparable(rows):
    return rows.drop(columns=TIMING).sort_values(["method", "image_id"]).reset_index(drop=True)


def reference_methods(sweep):
    return pd.read_parquet(sweep["out"] / "results.parquet").method.unique()


def test_sigkill_mid_sweep_then_rerun_matches_an_uninterrupted_sweep(smoke_sweep, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    args = [sys.executable, "-m", "benchmark.run", "-m", "experiment=default", "profile=smoke", f"out={out}", "progress=false"]
    env = {**os.environ, "REGBENCH_CACHE": str(cache)}
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
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
    assert len(resumed) == len(reference) == 2 * len(reference_methods(smoke_sweep))
    pd.testing.assert_frame_equal(_comparable(resumed), _comparable(reference))


def test_smoke_sweep_runs_with_the_network_blocked(tmp_path):
    code = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise OSError('network blocked by test')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
        "import runpy\n"
        f"sys.argv = ['run', '-m', 'method=tv,crr', 'profile=smoke', 'out={tmp_path / 'out'}', 'progress=false']\n"
        "runpy.run_module('benchmark.run', run_name='__main__', alter_sys=True)\n"
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
