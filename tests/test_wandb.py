"""logger=wandb: offline run folders inside OUT hold the per-combination runs and the sweep's leaderboard run.

Everything is read back from what W&B wrote (table files, the records of each run's
`.wandb` log), not from what regbench meant to log.
"""

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli
from test_pipeline import METHODS
from wandb_records import records

from regbench.results import leaderboard
from regbench.results.wandb_logger import OVERALL_COLUMNS, ROW_COLUMNS

TASK = "denoise_bsd68"
REFERENCES = {"crr": 28.10, "wcrr": 28.68}


def no_credentials_env(home: Path) -> dict:
    """A clean HOME (no netrc, no wandb settings) and no W&B variables: the default must be offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k != "NETRC"}
    return {**env, "HOME": str(home)}


def read_run(folder: Path) -> dict:
    """A run's identity, config, final summary and history rows, from its `.wandb` log."""
    run = {"summary": {}, "history": [], "config": {}, "folder": folder}
    (log_file,) = folder.glob("run-*.wandb")
    for record in records(log_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(name=record.run.display_name, group=record.run.run_group, job_type=record.run.job_type)
            run["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "summary":
            run["summary"].update(
                {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.summary.update}
            )
        elif kind == "history":
            run["history"].append(
                {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
            )
    return run


def nested(summary: dict, prefix: str) -> dict:
    """The entries of a logged dict-valued summary item (the log stores them under nested keys)."""
    return {k[len(prefix) + 1 :]: v for k, v in summary.items() if k.startswith(prefix + "/")}


def table(run: dict, key: str) -> pd.DataFrame:
    (path,) = (run["folder"] / "files" / "media" / "table").glob(f"{key}_*.table.json")
    blob = json.loads(path.read_text())
    return pd.DataFrame(blob["data"], columns=blob["columns"])


@pytest.fixture(scope="module")
def wandb_sweep(smoke_sweep, tmp_path_factory):
    """The default smoke sweep again with logger=wandb and no credentials (checkpoints and calibration cached)."""
    root = tmp_path_factory.mktemp("wandb")
    out = root / "out"
    proc = run_cli(
        "-m",
        "experiment=default",
        "profile=smoke",
        f"out={out}",
        "progress=false",
        "logger=wandb",
        cache=smoke_sweep["cache"],
        env=no_credentials_env(root / "home"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    folders = sorted((out / "wandb").glob("offline-run-*"))
    runs = [read_run(f) for f in folders]
    return {"out": out, "proc": proc, "runs": runs, "rows": pd.read_parquet(out / "results.parquet")}


def test_offline_by_default_one_run_per_combination_plus_a_leaderboard_run(wandb_sweep):
    runs = wandb_sweep["runs"]
    assert sorted(r["job_type"] for r in runs) == ["combination"] * len(METHODS) + ["leaderboard"]
    assert sorted(r["name"] for r in runs if r["job_type"] == "combination") == sorted(
        f"{m}__{TASK}__nominal" for m in METHODS
    )
    assert len({r["group"] for r in runs}) == 1 and runs[0]["group"].startswith("out-")
    assert not list((wandb_sweep["out"] / "wandb").glob("run-*")), "no online run folders without credentials"
    log = wandb_sweep["proc"].stdout + wandb_sweep["proc"].stderr
    assert "wandb sync" in log and "WARNING" not in log


def test_leaderboard_run_holds_the_tables_and_its_summary(wandb_sweep):
    (run,) = [r for r in wandb_sweep["runs"] if r["job_type"] == "leaderboard"]
    expected = leaderboard.nominal(wandb_sweep["rows"]).set_index("method")
    overall = table(run, "leaderboard")
    assert list(overall.columns) == OVERALL_COLUMNS
    assert sorted(overall.method) == METHODS and len(overall) == len(METHODS) and (overall.task == TASK).all()
    for r in overall.itertuples():
        assert r.psnr_mean == pytest.approx(expected.loc[r.method, "psnr_mean"], abs=1e-9)
        assert r.n_images == 2
        assert r.psnr_ci_low <= r.psnr_mean <= r.psnr_ci_high
        assert (r.psnr_ci_low, r.rank) == (
            pytest.approx(expected.loc[r.method, "psnr_ci_low"]),
            expected.loc[r.method, "rank"],
        )
        if r.method in REFERENCES:
            assert r.reference_psnr == REFERENCES[r.method] and r.gap_db == pytest.approx(
                r.psnr_mean - REFERENCES[r.method]
            )
    assert sorted(table(run, "mean_rank").method) == METHODS
    probe = table(run, "probe_nominal")
    assert list(probe.columns) == ["task", "method", "psnr@0", "ssim@0"] and sorted(probe.method) == METHODS
    summary = run["summary"]  # the final summary, as recorded in the run's .wandb log
    for method in METHODS:
        assert summary[f"{TASK}/{method}/psnr"] == pytest.approx(expected.loc[method, "psnr_mean"], abs=1e-9)
        assert summary[f"{TASK}/{method}/ssim"] == pytest.approx(expected.loc[method, "ssim_mean"], abs=1e-9)
    for method, ref in REFERENCES.items():
        assert summary[f"{TASK}/{method}/gap_db"] == pytest.approx(expected.loc[method, "psnr_mean"] - ref)
    logged = nested(summary, "leaderboard")
    assert (
        logged["_type"] == "table-file"
        and logged["nrows"] == len(METHODS)
        and logged["path"].startswith("media/table/")
    )


def test_combination_runs_hold_config_metrics_rows_examples_and_training_curves(wandb_sweep):
    rows = wandb_sweep["rows"]
    for run in (r for r in wandb_sweep["runs"] if r["job_type"] == "combination"):
        method = run["name"].split("__")[0]
        mine = rows[rows.method == method]
        assert run["config"]["method"]["name"] == method and run["config"]["profile"]["name"] == "smoke"
        assert run["summary"]["psnr"] == pytest.approx(mine.psnr.mean(), abs=1e-9)
        assert run["summary"]["n_images"] == 2 and run["summary"]["config_hash"] == mine.config_hash.iloc[0]
        per_image = table(run, "per_image")
        assert list(per_image.columns) == ROW_COLUMNS and sorted(per_image.image_id) == sorted(mine.image_id)
        images = nested(run["summary"], "examples/level=0")
        assert images["count"] == 2 and all(f"{method} " in c and " dB" in c for c in images["captions"])
        assert all((run["folder"] / "files" / f).is_file() for f in images["filenames"])
        curves = [h for h in run["history"] if "train/loss" in h]
        if (mine.training == "none").all():  # nothing to train
            assert curves == []
        else:  # trained in the smoke budget: 3 steps
            assert [h["train/step"] for h in curves] == [0, 1, 2] and all(h["train/loss"] > 0 for h in curves)
        if method in ("crr", "wcrr"):
            assert all(h["train/lipschitz"] > 0 for h in curves)


def test_unreachable_server_falls_back_to_offline_and_the_run_succeeds(smoke_sweep, tmp_path):
    env = {**no_credentials_env(tmp_path / "home"), "WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"}
    out = tmp_path / "out"
    proc = run_cli(
        "method=tv",
        "profile=smoke",
        f"out={out}",
        "progress=false",
        "logger=wandb",
        "logger.init_timeout=5",
        cache=smoke_sweep["cache"],
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert log.count("W&B: online start failed") == 1 and "continuing offline" in log
    assert len(pd.read_parquet(out / "results.parquet")) == 2
    runs = [read_run(f) for f in sorted((out / "wandb").glob("offline-run-*"))]
    assert sorted(r["job_type"] for r in runs) == ["combination", "leaderboard"]
