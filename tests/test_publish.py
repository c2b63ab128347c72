"""`regbench release`: results/ rebuilt from the release's own runs, with provenance, stale files deleted."""

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import REPO

from regbench.results.publish import EXPERIMENTS, header, prune


def test_release_rewrites_the_results_folder_from_its_runs(smoke_sweep, tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    shutil.copytree(smoke_sweep["out"], runs / "default" / "smoke")  # finished: the sweep skips every combination
    (results / "weights").mkdir(parents=True)
    history = {"history": {"psnr": [25.0, 26.0, 27.0, 27.5]}}
    manifest = {"k1": {"method": "crr", "training": "bilevel_ift", "file": "crr-k1.pt", "train_minutes": 2.0,
                       "device": "cpu:x86_64x2", "log": history}}  # fmt: skip
    (results / "weights" / "MANIFEST.json").write_text(json.dumps(manifest))
    (results / "references.yaml").write_text("[]\n")
    (results / "leaderboard-old.md").write_text("| hand-kept |\n")
    (results / "probes").mkdir()
    (results / "probes" / "old.png").write_bytes(b"png")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- release:default -->\nhand-written 99.99 dB\n<!-- /release:default -->\nrest\n")
    env = {**os.environ, "REGBENCH_CACHE": str(smoke_sweep["cache"])}
    proc = subprocess.run(
        [sys.executable, "-m", "regbench", "release", "--experiments", "default,training_curves", "--profile", "smoke",
         "--runs", str(runs), "--results", str(results), "--readme", str(readme)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    released = ["README.md", "default", "references.yaml", "training_curves", "weights"]
    assert sorted(p.name for p in results.iterdir()) == released
    assert "removed stale results/leaderboard-old.md" in proc.stdout and "results/probes" in proc.stdout
    stamp = json.loads((results / "default" / "RELEASE.json").read_text())
    rows = pd.read_parquet(results / "default" / "results.parquet")
    assert stamp["rows"] == len(rows) == len(pd.read_parquet(smoke_sweep["out"] / "results.parquet"))
    assert stamp["profile"] == "smoke" and stamp["commit"] and stamp["machine"]["threads"] >= 1
    assert stamp["command"].startswith("regbench release --experiments default,training_curves --profile smoke")
    assert stamp["sweeps"][0].startswith("regbench run -m experiment=default profile=smoke")
    md = (results / "default" / "leaderboard.md").read_text()
    assert md.startswith("# default: released results (smoke profile)") and f"`{stamp['commit']}`" in md
    assert "95% CI" in md and "| wcrr " in md
    csv = pd.read_csv(results / "default" / "leaderboard.csv")
    assert set(csv.method) == set(rows.method) and {"psnr_ci_low", "psnr_ci_high"} <= set(csv.columns)
    assert (results / "default" / "report.html").stat().st_size > 10_000
    text = readme.read_text()
    assert text.startswith("intro\n<!-- release:default -->\nReleased by `regbench release") and text.endswith("rest\n")
    assert "99.99" not in text and "**denoise_bsd68**" in text and f"at `{stamp['commit']}`" in text
    index = (results / "README.md").read_text()
    assert f"| [default](default/) | smoke | `{stamp['commit']}` |" in index
    curves = (results / "training_curves" / "training-curves.md").read_text()
    assert "no sweep: read from results/weights/MANIFEST.json" in curves and "cpu:x86_64x2 (1 rows)" in curves
    assert "| crr (bilevel_ift) | training-batch PSNR (dB) |" in curves
    assert "| [training_curves](training_curves/)" in index
    assert (results / "training_curves" / "training-curves.png").read_bytes()[:4] == b"\x89PNG"


def test_an_unknown_experiment_is_refused_before_anything_runs(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "regbench", "release", "--experiments", "defualt", "--results", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "unknown experiment(s) ['defualt']; published: default, tasks" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_prune_keeps_references_weights_index_and_released_folders(tmp_path):
    for name in ("weights", "default", "old"):
        (tmp_path / name).mkdir()
    (tmp_path / "default" / "RELEASE.json").write_text("{}")
    for name in ("references.yaml", "README.md", "perf-old.md"):
        (tmp_path / name).write_text("x")
    assert prune(tmp_path) == ["old", "perf-old.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "default", "references.yaml", "weights"]


def test_the_header_names_commit_machine_profile_commands_and_devices():
    stamp = {
        "experiment": "probes", "profile": "cpu", "date": "2026-01-01 00:00 UTC", "commit": "abc123",
        "machine": {"cpu": "Some CPU", "threads": 2, "torch_threads": 2, "gpu": "H100"},
        "rows_by_device": {"cpu:x86_64x2": 10, "cuda:H100": 5}, "command": "regbench release",
        "sweeps": ["regbench run -m experiment=probes"], "wall_seconds": 90.0,
    }  # fmt: skip
    text = header(stamp)
    for part in ("`abc123`", "Some CPU, 2 threads", "GPU: H100", "cpu:x86_64x2 (10 rows), cuda:H100 (5 rows)",
                 "`regbench run -m experiment=probes`", "1.5 min", "(cpu profile)"):  # fmt: skip
        assert part in text


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_published_experiment_is_a_registered_one(name):
    assert (REPO / "configs" / "experiment" / f"{name}.yaml").is_file()


def test_the_task_table_sweeps_every_task_once_with_8_bsd68_images_in_the_cpu_profile():
    """CT keeps all its test phantoms; the BSD68 tasks evaluate their first 8 images at cpu, the smoke
    profile keeps its own 2."""
    from conftest import run_of

    from regbench.core.registry import sweep_params
    from regbench.results.publish import EXPERIMENTS

    swept = [t for sweep in EXPERIMENTS["tasks"] for t in sweep[0].removeprefix("task=").split(",")]
    assert sorted(swept) == sorted(sweep_params("tasks")["task"])
    ct, bsd = EXPERIMENTS["tasks"]
    assert run_of("experiment=tasks", "profile=cpu", "task=ct_parallel_ellipses", *ct[1:]).n_test is None
    assert run_of("experiment=tasks", "profile=cpu", "task=sr_x2_bsd68", *bsd[1:]).n_test == 8
    assert run_of("experiment=tasks", "profile=smoke", "task=sr_x2_bsd68", *bsd[1:]).n_test == 2
